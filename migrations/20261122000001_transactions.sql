-- The ledger of upstream treaty transactions, natively partitioned.
--
-- Level 1: RANGE on accounting_period, one partition per calendar year.
-- Level 2: HASH on treaty_id, TRANSACTION_HASH_MODULUS (8) leaves per year.
-- A query naming one treaty and a period range therefore touches one leaf
-- per year in the range (ADR 0001). accounting_period is the first day of
-- the month, so a year partition is [YYYY-01-01, YYYY+1-01-01).
--
-- The primary key must include both partition keys. The id is UUID v5 of the
-- upstream natural key, which itself holds the treaty and the period, so
-- (treaty_id, accounting_period, id) is as unique as id alone.
--
-- Formats (code shapes, first-of-month periods, booked currencies) are
-- validated by the core types in the loader, the table's only writer of new
-- rows: per-row CHECKs with regular expressions cost more than the whole
-- COPY on this ledger's volumes (measured: +4 us a row). Codes are ASCII,
-- so they use the "C" collation: byte order, and cheaper to compare.

CREATE TYPE txn_status AS ENUM ('open', 'pending', 'cleared');

CREATE TABLE transactions (
    id                uuid          NOT NULL,
    treaty_id         text          COLLATE "C" NOT NULL,
    cedent_id         text          COLLATE "C" NOT NULL,
    accounting_period date          NOT NULL,
    txn_date          date          NOT NULL,
    amount            numeric(18,2) NOT NULL,
    currency          char(3)       COLLATE "C" NOT NULL,
    reference         text          NOT NULL DEFAULT '',
    source_ref        text          NOT NULL,
    status            txn_status    NOT NULL DEFAULT 'open',
    clearance_id      uuid,
    -- Bumped by every change of status; a snapshot records it and a
    -- clearance succeeds only if it is still the same (optimistic guard).
    row_version       bigint        NOT NULL DEFAULT 1 CHECK (row_version > 0),
    loaded_at         timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (treaty_id, accounting_period, id),
    CONSTRAINT open_rows_have_no_clearance CHECK (status <> 'open' OR clearance_id IS NULL),
    CONSTRAINT cleared_rows_name_their_clearance CHECK (status <> 'cleared' OR clearance_id IS NOT NULL)
) PARTITION BY RANGE (accounting_period);

-- Rows whose year has no partition yet land here instead of failing the
-- load. ensure_period_partitions() moves them out when it creates the year.
CREATE TABLE transactions_default PARTITION OF transactions DEFAULT;

-- Creates the year partitions (and their hash leaves) for every year from
-- year_from to year_to that does not have one yet. Idempotent and safe to
-- call from concurrent loaders (transaction-scoped advisory lock). Returns
-- how many year partitions it created.
--
-- Attaching a range next to a DEFAULT partition fails if the default holds
-- rows of that range, so such rows are moved out first: copied aside,
-- deleted from the default, and inserted again once the year exists.
CREATE FUNCTION ensure_period_partitions(year_from int, year_to int)
RETURNS int
LANGUAGE plpgsql
AS $fn$
DECLARE
    hash_modulus constant int := 8;  -- TRANSACTION_HASH_MODULUS; fixed for the table's life
    y int;
    r int;
    created int := 0;
    year_table text;
    moved bigint;
BEGIN
    IF year_from IS NULL OR year_to IS NULL OR year_from > year_to OR year_from < 1990 OR year_to > 2099 THEN
        RAISE EXCEPTION 'ensure_period_partitions: bad year range % to %', year_from, year_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('clearance.ensure_period_partitions'));
    FOR y IN year_from .. year_to LOOP
        year_table := format('transactions_y%s', y);
        CONTINUE WHEN to_regclass(year_table) IS NOT NULL;

        CREATE TEMP TABLE IF NOT EXISTS partition_move (LIKE transactions) ON COMMIT DROP;
        TRUNCATE partition_move;
        WITH gone AS (
            DELETE FROM transactions_default
            WHERE accounting_period >= make_date(y, 1, 1) AND accounting_period < make_date(y + 1, 1, 1)
            RETURNING *
        )
        INSERT INTO partition_move SELECT * FROM gone;
        GET DIAGNOSTICS moved = ROW_COUNT;

        EXECUTE format(
            'CREATE TABLE %I PARTITION OF transactions FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (treaty_id)',
            year_table, make_date(y, 1, 1), make_date(y + 1, 1, 1));
        FOR r IN 0 .. hash_modulus - 1 LOOP
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                format('%s_h%s', year_table, r), year_table, hash_modulus, r);
        END LOOP;

        IF moved > 0 THEN
            INSERT INTO transactions SELECT * FROM partition_move;
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;

-- One version per treaty, bumped in the same SQL transaction as every write
-- to that treaty's rows (load, clear, reverse). The version token of a
-- snapshot is built from these; a token that no longer matches means the
-- scope moved.
CREATE TABLE scope_versions (
    treaty_id  text        COLLATE "C" PRIMARY KEY,
    version    bigint      NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
