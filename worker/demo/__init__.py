"""Demo: `seqwatch demo`, its simulated accounts, and the fake provider APIs the tests share."""
