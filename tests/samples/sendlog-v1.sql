-- A send log written by schema version 1 (user_version = 1).
PRAGMA user_version = 1;
BEGIN TRANSACTION;
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
    );
INSERT INTO "attempts" VALUES(1,'unoda',1,1,'2026-11-28T11:14:12.490+00:00','2026-11-28T11:14:12.494+00:00','sent',250,'2.0.0 Ok: queued as 4Xy',NULL,'<a1.unoda@ngo.example>','1111111111111111111111111111111111111111111111111111111111111111');
INSERT INTO "attempts" VALUES(2,'unhcr',1,1,'2026-11-28T11:14:12.498+00:00','2026-11-28T11:14:12.502+00:00','transient',451,'4.7.1 try later',NULL,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222');
INSERT INTO "attempts" VALUES(3,'unhcr',1,2,'2026-11-28T11:14:12.506+00:00','2026-11-28T11:14:12.510+00:00','sent',250,'2.0.0 Ok',NULL,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222');
INSERT INTO "attempts" VALUES(4,'wfp',1,1,'2026-11-28T11:14:12.513+00:00','2026-11-28T11:14:12.516+00:00','permanent',550,'5.1.1 no such user',NULL,'<a3.wfp@ngo.example>','3333333333333333333333333333333333333333333333333333333333333333');
CREATE TABLE campaign (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
INSERT INTO "campaign" VALUES(1,'spring-letter','2026-11-28T11:14:12.479+00:00');
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
    );
INSERT INTO "recipients" VALUES('unoda',0,'registry@unoda.example','desk@unoda.example','sent',1,'<a1.unoda@ngo.example>','1111111111111111111111111111111111111111111111111111111111111111',250,'2.0.0 Ok: queued as 4Xy',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.494+00:00');
INSERT INTO "recipients" VALUES('unhcr',1,'office@unhcr.example','','sent',2,'<a2.unhcr@ngo.example>','2222222222222222222222222222222222222222222222222222222222222222',250,'2.0.0 Ok',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.510+00:00');
INSERT INTO "recipients" VALUES('wfp',2,'info@wfp.example','','failed',1,'<a3.wfp@ngo.example>','3333333333333333333333333333333333333333333333333333333333333333',550,'5.1.1 no such user',NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.516+00:00');
INSERT INTO "recipients" VALUES('who',3,'contact@who.example','','pending',0,NULL,NULL,NULL,NULL,NULL,'2026-11-28T11:14:12.486+00:00','2026-11-28T11:14:12.486+00:00');
CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        transport TEXT NOT NULL,
        pid INTEGER NOT NULL,
        outcome TEXT
    );
INSERT INTO "runs" VALUES(1,'2026-11-28T11:14:12.488+00:00','2026-11-28T11:14:12.516+00:00','smtp://relay.example:587',14250,'complete');
CREATE INDEX recipients_status ON recipients (status);
CREATE INDEX attempts_contact ON attempts (contact_id);
COMMIT;
