"""Kernel features newer than the test VM's 6.12 (the intervals goal), tested inside a 6.17 VM."""
