"""End-to-end tests with real etcd, PostgreSQL 15 and Patroni processes."""
