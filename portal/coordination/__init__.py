"""Coordination between workers and hosts: the Redis link every module shares, and leases on top of it."""
