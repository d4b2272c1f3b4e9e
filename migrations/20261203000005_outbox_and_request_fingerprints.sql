-- Two things the ledger now keeps (ADR 0005, ADR 0010):
--
-- 1. The fingerprint of the request behind every use of an idempotency key:
--    with the clearance, the reversal, and (new table) the batch job, so an
--    operator's key answers only its first request for as long as the
--    ledger lives, after the DynamoDB record (24 h) and the job's status
--    item (7 days) are gone. NULL on rows written before this migration.
--
-- 2. The transactional outbox: every event the ledger commits is written in
--    the same transaction, then published and marked. Only the publishing
--    columns can change; the rest is append-only like the ledger.

ALTER TABLE clearances ADD COLUMN request_hash text
    CONSTRAINT clearance_request_hash_is_sha256 CHECK (request_hash ~ '^[0-9a-f]{64}$');
ALTER TABLE clearance_reversals ADD COLUMN request_hash text
    CONSTRAINT reversal_request_hash_is_sha256 CHECK (request_hash ~ '^[0-9a-f]{64}$');

CREATE TABLE clearance_jobs (
    job_id          uuid        PRIMARY KEY,
    clearance_id    uuid        NOT NULL UNIQUE,
    treaty_id       text        NOT NULL,
    row_count       integer     NOT NULL CHECK (row_count > 0),
    operator_id     text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clearance_job_key_once UNIQUE (operator_id, idempotency_key)
);
CREATE TRIGGER clearance_jobs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON clearance_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

CREATE TABLE event_outbox (
    -- Commit order (near enough: identities are taken before the commit,
    -- and only the order of one clearance's events matters).
    seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    clearance_id  uuid        NOT NULL,
    kind          text        NOT NULL
        CHECK (kind IN ('ClearancePosted', 'ClearanceFailed', 'ClearanceReversed')),
    -- The event as the bus carries it (its `detail`).
    detail        jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A drainer's claim: no other drainer takes the event before this.
    claimed_until timestamptz,
    published_at  timestamptz
);
-- What the drains read: the unpublished events, in order, overall and per
-- clearance. Both stay as small as the backlog.
CREATE INDEX event_outbox_unpublished ON event_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX event_outbox_unpublished_by_clearance ON event_outbox (clearance_id, seq)
    WHERE published_at IS NULL;

CREATE FUNCTION event_outbox_publishing_only() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP <> 'UPDATE'
       OR (NEW.seq, NEW.event_id, NEW.clearance_id, NEW.kind, NEW.detail, NEW.created_at)
          IS DISTINCT FROM (OLD.seq, OLD.event_id, OLD.clearance_id, OLD.kind, OLD.detail, OLD.created_at)
       OR (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at) THEN
        RAISE EXCEPTION 'the event outbox changes only by publishing: % on event % is refused', TG_OP, OLD.event_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER event_outbox_publishing_only BEFORE UPDATE OR DELETE ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION event_outbox_publishing_only();
CREATE TRIGGER event_outbox_no_truncate BEFORE TRUNCATE ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

REVOKE ALL ON clearance_jobs, event_outbox FROM PUBLIC;
GRANT SELECT, INSERT ON clearance_jobs TO clearance_app;
GRANT SELECT, INSERT ON event_outbox TO clearance_app;
GRANT UPDATE (claimed_until, published_at) ON event_outbox TO clearance_app;
