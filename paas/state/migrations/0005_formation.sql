-- How many containers of each process type an app runs (ps:scale); types not listed run one container.
CREATE TABLE app_formation (
    app    TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    type   TEXT NOT NULL,
    count  INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (app, type)
);
