-- The clearance ledger: append-only. A clearance is a header, its lines (one
-- per cleared transaction, with the row_version it was cleared at) and its
-- journal entries; a reversal is a new row plus its own journal entries.
-- Nothing here is ever updated or deleted: the application role is granted
-- SELECT and INSERT only, and a trigger refuses UPDATE, DELETE and TRUNCATE
-- even to the owner.

CREATE TABLE clearances (
    clearance_id    uuid          PRIMARY KEY,
    treaty_id       text          NOT NULL,
    check_number    text          NOT NULL CHECK (length(check_number) BETWEEN 1 AND 64),
    check_amount    numeric(18,2) NOT NULL CHECK (check_amount > 0),
    currency        char(3)       NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    received_on     date          NOT NULL,
    cleared_total   numeric(18,2) NOT NULL,
    -- check_amount - cleared_total, booked to unapplied cash; zero unless
    -- the operator allowed a difference.
    difference      numeric(18,2) NOT NULL,
    row_count       integer       NOT NULL CHECK (row_count > 0),
    operator_id     text          NOT NULL,
    snapshot_id     text          NOT NULL,
    snapshot_filter jsonb         NOT NULL,
    version_token   text          NOT NULL,
    -- Bound here, in the same transaction as the ledger write, so that a
    -- crash between PostgreSQL and the DynamoDB idempotency record can never
    -- post the same request twice.
    idempotency_key text          NOT NULL,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT clearance_total_adds_up CHECK (cleared_total + difference = check_amount),
    CONSTRAINT clearance_idempotency_key_once UNIQUE (operator_id, idempotency_key)
);

CREATE TABLE clearance_lines (
    clearance_id      uuid          NOT NULL REFERENCES clearances,
    transaction_id    uuid          NOT NULL,
    treaty_id         text          NOT NULL,
    accounting_period date          NOT NULL,
    amount            numeric(18,2) NOT NULL,
    row_version       bigint        NOT NULL,
    PRIMARY KEY (clearance_id, transaction_id)
);

CREATE TABLE clearance_reversals (
    reversal_id     uuid        PRIMARY KEY,
    -- UNIQUE: a clearance is reversed at most once.
    clearance_id    uuid        NOT NULL UNIQUE REFERENCES clearances,
    reason          text        NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    operator_id     text        NOT NULL,
    idempotency_key text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reversal_idempotency_key_once UNIQUE (operator_id, idempotency_key)
);

CREATE TABLE journal_entries (
    entry_id     bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clearance_id uuid          NOT NULL REFERENCES clearances,
    reversal_id  uuid          REFERENCES clearance_reversals,
    account      text          NOT NULL CHECK (account IN ('cash', 'receivable', 'unapplied_cash')),
    debit        numeric(18,2) NOT NULL DEFAULT 0 CHECK (debit >= 0),
    credit       numeric(18,2) NOT NULL DEFAULT 0 CHECK (credit >= 0),
    currency     char(3)       NOT NULL,
    created_at   timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT journal_line_is_one_sided CHECK ((debit = 0) <> (credit = 0))
);
CREATE INDEX journal_entries_by_clearance ON journal_entries (clearance_id, reversal_id);

-- Debits equal credits for every posting (a clearance, or one reversal of
-- it), checked at commit so the lines of one posting can be inserted one by
-- one. An unbalanced posting aborts its transaction.
CREATE FUNCTION journal_posting_balances() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
    debits numeric;
    credits numeric;
BEGIN
    SELECT sum(debit), sum(credit) INTO debits, credits
    FROM journal_entries
    WHERE clearance_id = NEW.clearance_id AND reversal_id IS NOT DISTINCT FROM NEW.reversal_id;
    IF debits <> credits THEN
        RAISE EXCEPTION 'journal posting of clearance % (reversal %) does not balance: debits %, credits %',
            NEW.clearance_id, NEW.reversal_id, debits, credits
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_posting_balances';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE CONSTRAINT TRIGGER journal_posting_balances
    AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_posting_balances();

CREATE FUNCTION ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    RAISE EXCEPTION 'the clearance ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER clearances_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON clearances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER clearance_lines_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON clearance_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER clearance_reversals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON clearance_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
