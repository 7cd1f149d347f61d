"""The send log's schema: each migration moves it one version up; ``user_version`` counts them.

Migrations only add tables and columns, so that a reader may upgrade an older file too.
"""

# Each entry moves the schema one version up; user_version records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE campaign (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        transport TEXT NOT NULL,
        pid INTEGER NOT NULL,
        outcome TEXT
    );
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
    CREATE INDEX recipients_status ON recipients (status);
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
    CREATE INDEX attempts_contact ON attempts (contact_id);
    """,
    # 2: what came back after the hand-over ('outreach track'). Until now an address changed only
    # while pending, so every earlier attempt went to the recipient's current address.
    """
    ALTER TABLE recipients ADD COLUMN delivery TEXT NOT NULL DEFAULT 'unknown';
    ALTER TABLE recipients ADD COLUMN replied_at TEXT;
    ALTER TABLE recipients ADD COLUMN auto_replied_at TEXT;
    ALTER TABLE attempts ADD COLUMN email TEXT;
    UPDATE attempts SET email = (
        SELECT r.email FROM recipients AS r WHERE r.contact_id = attempts.contact_id
    );
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
    CREATE INDEX events_contact ON events (contact_id);
    CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: attached files as last checked or sent, so that one changed since is caught; test
    # sends, which are no recipient's delivery and touch no status.
    """
    CREATE TABLE attachment_files (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL
    );
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
    """,
    # 4: copies of sent letters for the account's Sent folder ('send --save-sent'). A copy is
    # kept with the settle of its 250, bytes and all, and its bytes are dropped once saved; one
    # still unsaved is saved by the next run with --save-sent.
    """
    CREATE TABLE sent_copies (
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        message_id TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        data BLOB,
        folder TEXT,
        saved_at TEXT,
        error TEXT,
        PRIMARY KEY (contact_id, message_id)
    );
    CREATE INDEX sent_copies_unsaved ON sent_copies (sent_at) WHERE saved_at IS NULL;
    """,
    # 5: whether each run went to a server (1) or into a Maildir, a trial (0), so that one log
    # never holds both: a trial's letters would count as sent for a live run. NULL for the runs
    # of earlier releases, told apart by their transport ('maildir:PATH' for a Maildir).
    """
    ALTER TABLE runs ADD COLUMN live INTEGER;
    """,
    # 6: follow-ups in the same thread. The first letter stays in recipients (stage 'first');
    # each follow-up stage has its own row in letters with the same guarantees. sent_at is when
    # a letter's 250 came, filled for old logs from the attempt that got it; server_id is the id
    # a server said in its 250 (one that replaces the Message-ID); thread_index is Outlook's
    # Thread-Index, kept so that every render of a letter carries the same one. stops: contacts
    # to write no more to. events gain the stage they answer and an out-of-office's return date.
    """
    CREATE TABLE letters (
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,
        content_hash TEXT,
        reply_code INTEGER,
        reply_text TEXT,
        refused TEXT,
        server_id TEXT,
        thread_index TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (contact_id, stage)
    );
    CREATE INDEX letters_status ON letters (status);
    ALTER TABLE recipients ADD COLUMN server_id TEXT;
    ALTER TABLE recipients ADD COLUMN thread_index TEXT;
    ALTER TABLE recipients ADD COLUMN sent_at TEXT;
    UPDATE recipients SET sent_at = (
        SELECT MAX(a.finished_at) FROM attempts AS a
        WHERE a.contact_id = recipients.contact_id AND a.outcome = 'sent'
        AND a.message_id = recipients.message_id
    ) WHERE status = 'sent';
    ALTER TABLE attempts ADD COLUMN stage TEXT NOT NULL DEFAULT 'first';
    CREATE INDEX attempts_open ON attempts (contact_id, stage) WHERE finished_at IS NULL;
    CREATE TABLE stops (
        contact_id TEXT PRIMARY KEY REFERENCES recipients (contact_id),
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    );
    ALTER TABLE events ADD COLUMN back_at TEXT;
    ALTER TABLE events ADD COLUMN stage TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
