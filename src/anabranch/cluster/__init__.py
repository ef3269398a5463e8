"""Cluster mode: ZooKeeper coordination (membership, controller election, container assignment, owner epochs),
the processes that run a cluster on one machine, and the Tier-1 engines' servers."""
