-- The role the Lambda functions and the local server connect as. It reads
-- the ledger, changes only the clearing columns of transactions, bumps scope
-- versions and appends to the clearance ledger; it has no UPDATE, DELETE or
-- TRUNCATE on ledger rows, no INSERT or DELETE on transactions (only the
-- loader, running as the owner, adds rows) and no DDL.
--
-- Roles are cluster-wide: creating it is tolerant of it existing already
-- (another database of the same cluster, or a concurrent migration).
DO $$
BEGIN
    CREATE ROLE clearance_app LOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

REVOKE ALL ON transactions, scope_versions, clearances, clearance_lines, clearance_reversals, journal_entries
    FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO clearance_app;
GRANT SELECT ON transactions TO clearance_app;
GRANT UPDATE (status, clearance_id, row_version) ON transactions TO clearance_app;
GRANT SELECT, INSERT, UPDATE ON scope_versions TO clearance_app;
GRANT SELECT, INSERT ON clearances, clearance_lines, clearance_reversals, journal_entries TO clearance_app;
-- Partition creation is the loader's (the owner's) job.
REVOKE EXECUTE ON FUNCTION ensure_period_partitions(int, int) FROM PUBLIC;
