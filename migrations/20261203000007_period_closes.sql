-- Period close (ADR 0015): per treaty and accounting period, a close and a
-- reopen (with a reason) are entries of an append-only ledger, with who,
-- why and the idempotency key of the request. A period's state is its
-- latest entry. Clearing, reserving, finalizing or reversing a row of a
-- closed period is refused in the same transaction as the guard: every one
-- of those transactions and every close or reopen bumps the treaty's scope
-- version, and the writers read the periods' state after that bump, so the
-- scope row orders a close against every posting of its treaty.

CREATE TABLE period_closes (
    entry_id          bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    treaty_id         text          COLLATE "C" NOT NULL,
    accounting_period date          NOT NULL CHECK (extract(day FROM accounting_period) = 1),
    action            text          NOT NULL CHECK (action IN ('close', 'reopen')),
    -- Mandatory for a reopen; a close may give one.
    reason            text          NOT NULL DEFAULT '',
    operator_id       text          NOT NULL,
    idempotency_key   text          NOT NULL,
    request_hash      text          CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    created_at        timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT period_close_reason_fits CHECK (length(reason) <= 500),
    CONSTRAINT period_reopen_has_a_reason CHECK (action = 'close' OR length(btrim(reason)) >= 1),
    CONSTRAINT period_close_key_once UNIQUE (operator_id, idempotency_key)
);
-- A period's latest entry, and a treaty's periods in a range.
CREATE INDEX period_closes_latest ON period_closes (treaty_id, accounting_period, entry_id DESC);

CREATE TRIGGER period_closes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON period_closes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

REVOKE ALL ON period_closes FROM PUBLIC;
GRANT SELECT, INSERT ON period_closes TO clearance_app;
GRANT SELECT ON period_closes TO clearance_reader;
