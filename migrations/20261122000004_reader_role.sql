-- The role the read function connects as: it searches the ledger and reads
-- scope versions, nothing else. Its sessions start read-only as well, so a
-- write needs both a grant it does not have and a SET it never issues.
--
-- Roles are cluster-wide: creating it is tolerant of it existing already.
DO $$
BEGIN
    CREATE ROLE clearance_reader LOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

ALTER ROLE clearance_reader SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO clearance_reader;
GRANT SELECT ON transactions, scope_versions TO clearance_reader;
