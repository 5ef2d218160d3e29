-- Field notes: writers and their notes (SQLite).
CREATE TABLE IF NOT EXISTS writer (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL,
    password_hash TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS note (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    writer_id INTEGER NOT NULL REFERENCES writer (id),
    written TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    heading TEXT NOT NULL,
    text TEXT NOT NULL
);
