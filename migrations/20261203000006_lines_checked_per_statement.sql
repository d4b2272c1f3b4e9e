-- A clearance's lines name their header, checked once per statement instead
-- of once per line (ADR 0014).
--
-- The foreign key from clearance_lines to clearances ran its check query for
-- every line: about a third of a 100K-row clearance's time here, and under
-- the pools' force_custom_plan each of those checks was planned again. The
-- ledger never deletes a header (the append-only trigger refuses DELETE and
-- TRUNCATE on clearances, even to the owner), so the only thing the key
-- still guarded is that a line names a header that exists when it is
-- written: a statement-level trigger over the statement's new lines checks
-- exactly that, with one join, and the audit (clearance_pg::audit) counts
-- lines without a header as a broken invariant.

ALTER TABLE clearance_lines DROP CONSTRAINT clearance_lines_clearance_id_fkey;

-- The search path is pinned (temporary tables last) and the table named
-- with its schema, so a session's own (temporary) clearances
-- table cannot stand in for the ledger's.
CREATE FUNCTION clearance_lines_name_their_header() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    orphan uuid;
BEGIN
    SELECT n.clearance_id INTO orphan
    FROM (SELECT DISTINCT clearance_id FROM new_lines) n
    WHERE NOT EXISTS (SELECT 1 FROM public.clearances c WHERE c.clearance_id = n.clearance_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'clearance lines name clearance %, which has no header', orphan
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'clearance_lines_name_their_header';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER clearance_lines_name_their_header
    AFTER INSERT ON clearance_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION clearance_lines_name_their_header();
