-- A send log written by schema version 3 (user_version = 3): the v1 sample, upgraded,
-- with a bounce, an attachment hash and a test send recorded.
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE attachment_files (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL
    );
INSERT INTO "attachment_files" VALUES('annex.pdf','4444444444444444444444444444444444444444444444444444444444444444',1234,'2026-11-28T13:58:38.332+00:00','check');
CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        run_id INTEGER NOT NULL REFERENCES runs (id),
        number INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        reply_code INTEGER,
        reply_text TEXT,
        refused TEXT,
        message_id TEXT NOT NULL,
        content_hash TEXT NOT NULL
    , email TEXT);
INSERT INTO "attempts" VALUES(1,'unoda',1,1,'2026-11-28T11:14:12.490+00:00','2026-11-28T11:14:12.494+00:00','sent',250,'2.0.0 Ok: queued as 4Xy',NULL,'<a1.unoda@ngo.example>','1111111111111111111111111111111111111111111111111111111111111111','registry@unoda.example');
INSERT INTO "attempts" VALUES(2,'unhcr',1,1,'2026-11-28T11:14:12.498+00:00','2026-11-28T11:14:12.502+00:00','transient',451,'4.7.1 try later',NULL,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222','office@unhcr.example');
INSERT INTO "attempts" VALUES(3,'unhcr',1,2,'2026-11-28T11:14:12.506+00:00','2026-11-28T11:14:12.510+00:00','sent',250,'2.0.0 Ok',NULL,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222','office@unhcr.example');
INSERT INTO "attempts" VALUES(4,'wfp',1,1,'2026-11-28T11:14:12.513+00:00','2026-11-28T11:14:12.516+00:00','permanent',550,'5.1.1 no such user',NULL,'<a3.wfp@ngo.example>','3333333333333333333333333333333333333333333333333333333333333333','info@wfp.example');
CREATE TABLE campaign (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
INSERT INTO "campaign" VALUES(1,'spring-letter','2026-11-28T11:14:12.479+00:00');
CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        evidence TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        sent_to TEXT,
        status_code TEXT NOT NULL DEFAULT '',
        diagnostic TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL DEFAULT '',
        excerpt TEXT NOT NULL DEFAULT '',
        original_id TEXT NOT NULL DEFAULT '',
        matched_by TEXT NOT NULL DEFAULT '',
        UNIQUE (contact_id, kind, evidence, address)
    );
INSERT INTO "events" VALUES(1,'unoda','bounced','2026-11-28T12:00:00.000+00:00','2026-11-28T13:58:38.332+00:00','INBOX',1700000000,7,'<report-7@mx.unoda.example>','registry@unoda.example','registry@unoda.example','5.1.1','550 5.1.1 no such user','','','a1.unoda@ngo.example','message-id');
CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
INSERT INTO "folders" VALUES('INBOX',1700000000,7,'2026-11-28T13:58:38.332+00:00');
CREATE TABLE recipients (
        contact_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        email TEXT NOT NULL,
        cc TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,
        content_hash TEXT,
        reply_code INTEGER,
        reply_text TEXT,
        refused TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    , delivery TEXT NOT NULL DEFAULT 'unknown', replied_at TEXT, auto_replied_at TEXT);
INSERT INTO "recipients" VALUES('unoda',0,'registry@unoda.example','desk@unoda.example','sent',1,'<a1.unoda@ngo.example>','1111111111111111111111111111111111111111111111111111111111111111',250,'2.0.0 Ok: queued as 4Xy',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.494+00:00','bounced',NULL,NULL);
INSERT INTO "recipients" VALUES('unhcr',1,'office@unhcr.example','','sent',2,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222',250,'2.0.0 Ok',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.510+00:00','unknown',NULL,NULL);
INSERT INTO "recipients" VALUES('wfp',2,'info@wfp.example','','failed',1,'<a3.wfp@ngo.example>','3333333333333333333333333333333333333333333333333333333333333333',550,'5.1.1 no such user',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.516+00:00','unknown',NULL,NULL);
INSERT INTO "recipients" VALUES('who',3,'contact@who.example','','pending',0,NULL,NULL,NULL,NULL,NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.486+00:00','unknown',NULL,NULL);
CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        transport TEXT NOT NULL,
        pid INTEGER NOT NULL,
        outcome TEXT
    );
INSERT INTO "runs" VALUES(1,'2026-11-28T11:14:12.488+00:00','2026-11-28T11:14:12.516+00:00','smtp://relay.example:587',14250,'complete');
CREATE TABLE test_sends (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs (id),
        contact_id TEXT NOT NULL,
        address TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reply_code INTEGER,
        reply_text TEXT
    );
INSERT INTO "test_sends" VALUES(1,NULL,'unoda','me@ngo.example','2026-11-28T13:58:38.333+00:00','<t1.unoda@ngo.example>','5555555555555555555555555555555555555555555555555555555555555555','sent',250,'2.0.0 Ok');
CREATE INDEX recipients_status ON recipients (status);
CREATE INDEX attempts_contact ON attempts (contact_id);
CREATE INDEX events_contact ON events (contact_id);
COMMIT;
