"""SQL of the capture triggers, per dialect (:mod:`cachedeps.capture` describes the design).

One SQL spelling per kind of :data:`cachedeps.algebra.KINDS` and dialect (:data:`SPELLING`),
and the generators of each dialect's DDL from a :class:`~cachedeps.capture.CaptureTable`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterable

from . import algebra
from .errors import ConfigurationError
from .feed import ADVISORY_LOCK_ID, MAX_FEED_KEY, RAW_PREFIX

if TYPE_CHECKING:
    from .capture import CaptureTable

__all__ = ["MAX_ROWS", "SPELLING", "capture_ddl", "remove_ddl"]

MAX_ROWS = 1000
#: Values longer than this many characters are digested by the engine (cachedeps.keys).
_MAX_VALUE = 64
_PREFIX = "cachedeps_cap_"
_REGISTRY = "cachedeps_capture"
_STAGE = "cachedeps_capture_stage"
_TX = "cachedeps_capture_tx"
_DIALECTS = ("postgresql", "sqlite", "mysql")
_UUID_RE = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID_GLOB = "-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12))


def _pg_digest(e: str) -> str:
    return f"'#' || left(encode(sha256(convert_to({e}, 'UTF8')), 'hex'), 32)"


def _my_digest(e: str) -> str:
    return f"CONCAT('#', LEFT(SHA2(CONVERT({e} USING utf8mb4), 256), 32))"


#: kind -> dialect -> SQL spelling template(s) of a text expression ``{e}`` (non-NULL).
#: Each template yields the engine's spelling of the value, or NULL when it has none (the
#: row then emits ``t:*``). PostgreSQL text gives two templates (text and digest for short
#: non-ASCII text); SQLite text is spelled by the poller from a raw row (see module doc).
SPELLING: dict[str, dict[str, tuple[str, ...]]] = {
    algebra.INTEGER: {
        "postgresql": ("CASE WHEN {e} ~ '^-?[0-9]+$' THEN {e} END",),
        "sqlite": ("CASE WHEN typeof({v}) = 'integer' THEN {e} END",),
        "mysql": ("CASE WHEN {e} REGEXP '^-?[0-9]+$' THEN {e} END",),
    },
    algebra.BOOLEAN: {
        "postgresql": ("CASE {e} WHEN 'true' THEN '1' WHEN 'false' THEN '0' WHEN '1' THEN '1' WHEN '0' THEN '0' END",),
        "sqlite": ("CASE WHEN typeof({v}) = 'integer' AND {v} IN (0, 1) THEN {e} END",),
        "mysql": ("CASE {e} WHEN '1' THEN '1' WHEN '0' THEN '0' END",),
    },
    algebra.TEXT: {
        "postgresql": (
            # the text itself when it is short and holds no ASCII space or control, else the digest
            f"CASE WHEN length({{e}}) <= {_MAX_VALUE} AND {{e}} !~ '[\\x01-\\x20\\x7f]' THEN {{e}} "
            f"ELSE {_pg_digest('{e}')} END",
            # the text itself only when it is printable ASCII, else the digest
            f"CASE WHEN length({{e}}) <= {_MAX_VALUE} AND {{e}} ~ '^[\\x21-\\x7e]*$' THEN {{e}} "
            f"ELSE {_pg_digest('{e}')} END",
        ),
        "sqlite": ("CASE WHEN typeof({v}) = 'text' THEN {e} END",),
        "mysql": (
            f"CASE WHEN CHAR_LENGTH({{e}}) <= {_MAX_VALUE} AND CAST({{e}} AS BINARY) NOT REGEXP '[[:cntrl:] ]' "
            f"THEN {{e}} ELSE {_my_digest('{e}')} END",
            f"CASE WHEN CHAR_LENGTH({{e}}) <= {_MAX_VALUE} AND CAST({{e}} AS BINARY) REGEXP '^[!-~]*$' "
            f"THEN {{e}} ELSE {_my_digest('{e}')} END",
        ),
    },
    algebra.UUID: {
        "postgresql": ("CASE WHEN {e} ~ '" + _UUID_RE + "' THEN {e} END",),
        "sqlite": ("CASE WHEN typeof({v}) = 'text' AND {v} GLOB '" + _UUID_GLOB + "' THEN {e} END",),
        "mysql": ("CASE WHEN CAST({e} AS BINARY) REGEXP '" + _UUID_RE + "' THEN {e} END",),
    },
}




def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fname(table: str) -> str:
    base = _PREFIX + table
    if len(base.encode("utf-8")) <= 63 and base.replace("_", "").isalnum():
        return base
    return _PREFIX + hashlib.sha256(table.encode("utf-8")).hexdigest()[:24]


def _check_dialect(dialect: str) -> str:
    """Return the dialect's name as this module spells it (``mariadb`` is ``mysql``)."""
    dialect = "mysql" if dialect == "mariadb" else dialect
    if dialect not in _DIALECTS:
        raise ConfigurationError(f"capture triggers support {', '.join(_DIALECTS)}; got dialect {dialect!r}")
    return dialect




# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_spellings(kind: str, col: str) -> list[str]:
    """SQL expressions spelling ``col`` (NULL -> 'null', unspellable -> NULL)."""
    e = f"{col}::text"
    return [f"CASE WHEN {col} IS NULL THEN 'null' ELSE {t.replace('{e}', e)} END" for t in SPELLING[kind]["postgresql"]]


def _pg_fv(table: CaptureTable, alias: str) -> list[str]:
    out = []
    for c in table.columns:
        if c.kind in algebra.KINDS:
            for s in _pg_spellings(c.kind, f"{alias}.{_q(c.name)}"):
                out.append(f"{_lit(f'{table.name}.{c.name}=')} || {s}")
    return out


def _pg_arr(items: list[str]) -> str:
    return "ARRAY[" + ", ".join(items) + "]::text[]" if items else "ARRAY[]::text[]"


def _pg_shared(feed_table: str) -> list[str]:
    lock = ADVISORY_LOCK_ID
    ft = _q(feed_table)
    return [
        f"CREATE TABLE IF NOT EXISTS {_REGISTRY} (tbl VARCHAR(255) PRIMARY KEY, spec TEXT NOT NULL)",
        f"CREATE UNLOGGED TABLE IF NOT EXISTS {_STAGE} (xid BIGINT NOT NULL, key TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {_STAGE}_xid ON {_STAGE} (xid)",
        f"CREATE TABLE IF NOT EXISTS {_TX} (xid BIGINT NOT NULL)",
        f"""CREATE OR REPLACE FUNCTION cachedeps_capture_put(tbl text, ks text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $cd$
DECLARE
  seen text := coalesce(current_setting('cachedeps.captured', true), '');
BEGIN
  IF ks IS NULL OR cardinality(ks) = 0 THEN RETURN; END IF;
  INSERT INTO {_STAGE} (xid, key) SELECT txid_current(), k FROM unnest(ks) AS k;
  IF position(',' || tbl || ',' IN seen) = 0 THEN
    PERFORM set_config('cachedeps.captured', CASE WHEN seen = '' THEN ',' ELSE seen END || tbl || ',', true);
  END IF;
  IF coalesce(current_setting('cachedeps.pending', true), '') = '' THEN
    -- queue the deferred flush (once until it runs)
    INSERT INTO {_TX} (xid) VALUES (txid_current());
    PERFORM set_config('cachedeps.pending', '1', true);
  END IF;
END $cd$""",
        f"""CREATE OR REPLACE FUNCTION cachedeps_capture_flush(want_tid boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $cd$
DECLARE
  t bigint;
BEGIN
  PERFORM pg_advisory_xact_lock({lock});
  IF coalesce(current_setting('cachedeps.pending', true), '') <> '' THEN
    WITH moved AS (DELETE FROM {_STAGE} WHERE xid = txid_current() RETURNING key)
    INSERT INTO {ft} (key) SELECT DISTINCT key FROM moved;
    DELETE FROM {_TX} WHERE xid = txid_current();
    PERFORM set_config('cachedeps.pending', '', true);
  END IF;
  IF want_tid THEN
    SELECT max(tid) INTO t FROM {ft};
  END IF;
  RETURN t;
END $cd$""",
        f"""CREATE OR REPLACE FUNCTION cachedeps_capture_commit() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $cd$
BEGIN
  PERFORM cachedeps_capture_flush(false);
  RETURN NULL;
END $cd$""",
        f"DROP TRIGGER IF EXISTS cachedeps_capture_commit ON {_TX}",
        f"CREATE CONSTRAINT TRIGGER cachedeps_capture_commit AFTER INSERT ON {_TX} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cachedeps_capture_commit()",
    ]


def _pg_event() -> list[str]:
    return [
        f"""CREATE OR REPLACE FUNCTION cachedeps_capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $cd$
DECLARE
  r record;
BEGIN
  IF to_regclass('{_REGISTRY}') IS NULL OR to_regclass('{_STAGE}') IS NULL THEN RETURN; END IF;
  IF TG_EVENT = 'sql_drop' THEN
    FOR r IN SELECT DISTINCT d.object_name AS name FROM pg_event_trigger_dropped_objects() d
             WHERE d.object_type = 'table' AND d.object_name IN (SELECT tbl FROM {_REGISTRY}) LOOP
      PERFORM cachedeps_capture_put(r.name, ARRAY[r.name, r.name || ':*']);
    END LOOP;
  ELSE
    FOR r IN SELECT DISTINCT c.relname::text AS name FROM pg_event_trigger_ddl_commands() d
             JOIN pg_class c ON c.oid = d.objid
             WHERE d.classid = 'pg_class'::regclass AND d.command_tag = 'ALTER TABLE'
               AND c.relname::text IN (SELECT tbl FROM {_REGISTRY}) LOOP
      PERFORM cachedeps_capture_put(r.name, ARRAY[r.name, r.name || ':*']);
    END LOOP;
  END IF;
END $cd$""",
        "DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_end",
        "CREATE EVENT TRIGGER cachedeps_capture_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE') "
        "EXECUTE FUNCTION cachedeps_capture_ddl()",
        "DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_drop",
        "CREATE EVENT TRIGGER cachedeps_capture_ddl_drop ON sql_drop WHEN TAG IN ('DROP TABLE') "
        "EXECUTE FUNCTION cachedeps_capture_ddl()",
    ]


def _pg_keys_sql(table: CaptureTable, op: str) -> str:
    """Return the SELECT of the distinct keys of one statement over the transition tables."""
    t = table.name
    coarse = _lit(f"{t}:*")
    pk = table.pk[0]
    pk_kind = {c.name: c.kind for c in table.columns}[pk]
    fix = f"CASE WHEN k IS NULL OR octet_length(k) > {MAX_FEED_KEY} THEN {coarse} ELSE k END"
    if op == "UPDATE":
        oids = [f"{_lit(t + ':')} || {s}" for s in _pg_spellings(pk_kind, f"o.{_q(pk)}")]
        changed = [
            f"CASE WHEN o.{_q(c.name)}::text IS DISTINCT FROM n.{_q(c.name)}::text THEN {_lit(c.name)} END"
            for c in table.columns
        ]
        return (
            f"WITH r AS (SELECT {_pg_arr(oids)} AS o, {_pg_arr(_pg_fv(table, 'o') + _pg_fv(table, 'n'))} AS f, "
            f"array_remove({_pg_arr(changed)}, NULL) AS ch "
            f"FROM cachedeps_old o JOIN cachedeps_new n ON o.{_q(pk)} = n.{_q(pk)}) "
            f"SELECT array_agg(DISTINCT {fix}) FROM ("
            f"SELECT {_lit(t)} AS k "
            f"UNION ALL SELECT x FROM r, unnest(r.o) x "
            f"UNION ALL SELECT {_lit(t + '/')} || c FROM r, unnest(r.ch) c "
            f"UNION ALL SELECT x FROM r, unnest(r.f) x "
            f"UNION ALL SELECT x || '/' || c FROM r, unnest(r.f) x, unnest(r.ch) c) s"
        )
    rows = "cachedeps_new" if op == "INSERT" else "cachedeps_old"
    oids = [f"{_lit(t + ':')} || {s}" for s in _pg_spellings(pk_kind, f"a.{_q(pk)}")]
    return (
        f"WITH r AS (SELECT {_pg_arr(oids)} AS o, {_pg_arr(_pg_fv(table, 'a'))} AS f FROM {rows} a) "
        f"SELECT array_agg(DISTINCT {fix}) FROM ("
        f"SELECT {_lit(t)} AS k UNION ALL SELECT {_lit(t + '/*')} "
        f"UNION ALL SELECT x FROM r, unnest(r.o) x "
        f"UNION ALL SELECT x FROM r, unnest(r.f) x "
        f"UNION ALL SELECT x || '/*' FROM r, unnest(r.f) x) s"
    )


def _pg_table(table: CaptureTable) -> list[str]:
    t, qt, fn = table.name, _q(table.name), _fname(table.name)
    coarse = f"PERFORM cachedeps_capture_put({_lit(t)}, ARRAY[{_lit(t)}, {_lit(t + ':*')}]);"
    fine = table.fallback() is None
    names_check = (
        "(SELECT string_agg(attname::text, ',' ORDER BY attname::text COLLATE \"C\") FROM pg_attribute "
        f"WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped) IS DISTINCT FROM {_lit(table.names())}"
    )
    if fine:
        pk = _q(table.pk[0])
        body = f"""
  IF TG_OP = 'TRUNCATE' THEN {coarse} RETURN NULL; END IF;
  IF TG_OP = 'DELETE' THEN SELECT count(*) INTO n FROM cachedeps_old;
  ELSE SELECT count(*) INTO n FROM cachedeps_new; END IF;
  IF n = 0 THEN RETURN NULL; END IF;
  IF n > {MAX_ROWS} OR {names_check} THEN {coarse} RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    {_pg_keys_sql(table, 'INSERT')} INTO ks;
  ELSIF TG_OP = 'DELETE' THEN
    {_pg_keys_sql(table, 'DELETE')} INTO ks;
  ELSE
    SELECT count(*) INTO m FROM cachedeps_old o JOIN cachedeps_new p ON o.{pk} = p.{pk};
    IF m <> n OR (SELECT count(*) FROM cachedeps_old) <> n THEN {coarse} RETURN NULL; END IF;
    {_pg_keys_sql(table, 'UPDATE')} INTO ks;
  END IF;
  PERFORM cachedeps_capture_put({_lit(t)}, ks);
  RETURN NULL;"""
    else:
        body = f"""
  IF TG_OP = 'TRUNCATE' THEN {coarse} RETURN NULL; END IF;
  IF TG_OP = 'DELETE' THEN
    IF NOT EXISTS (SELECT 1 FROM cachedeps_old) THEN RETURN NULL; END IF;
  ELSIF NOT EXISTS (SELECT 1 FROM cachedeps_new) THEN RETURN NULL; END IF;
  {coarse}
  RETURN NULL;"""
    out = [
        f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $cd$
DECLARE
  n bigint;
  m bigint;
  ks text[];
BEGIN{body}
END $cd$""",
    ]
    for name, when, ref in (
        ("ins", "INSERT", "REFERENCING NEW TABLE AS cachedeps_new"),
        ("upd", "UPDATE", "REFERENCING OLD TABLE AS cachedeps_old NEW TABLE AS cachedeps_new"),
        ("del", "DELETE", "REFERENCING OLD TABLE AS cachedeps_old"),
        ("trunc", "TRUNCATE", ""),
    ):
        trig = f"cachedeps_capture_{name}"
        out.append(f"DROP TRIGGER IF EXISTS {trig} ON {qt}")
        out.append(f"CREATE TRIGGER {trig} AFTER {when} ON {qt} {ref} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
    out.append(
        f"INSERT INTO {_REGISTRY} (tbl, spec) VALUES ({_lit(t)}, {_lit(table.spec())}) "
        "ON CONFLICT (tbl) DO UPDATE SET spec = EXCLUDED.spec"
    )
    return out


# -- SQLite ------------------------------------------------------------------------------------


def _sl_spelling(kind: str, col: str) -> tuple[str, str]:
    """Return (value SQL, raw SQL) for ``col``: the spelled value (NULL: unspellable) and
    whether it is raw text the poller must spell."""
    if kind == algebra.TEXT:
        value = f"CASE typeof({col}) WHEN 'null' THEN 'null' WHEN 'text' THEN {col} END"
        raw = f"(typeof({col}) = 'text' AND (length({col}) > {_MAX_VALUE} OR {col} GLOB '*[^!-~]*'))"
        return value, raw
    template = SPELLING[kind]["sqlite"][0]
    return f"CASE WHEN {col} IS NULL THEN 'null' ELSE {template.replace('{v}', col).replace('{e}', f'CAST({col} AS TEXT)')} END", "0"


def _sl_key(head: str, value: str, raw: str, tail: str) -> str:
    """SQL building ``head + spelled value + tail`` (a raw row when ``raw``)."""
    return (
        f"CASE WHEN {value} IS NULL THEN NULL WHEN {raw} THEN "
        f"{_lit(RAW_PREFIX)} || {head} || char(31) || {tail} || char(31) || {value} "
        f"ELSE {head} || {value} || {tail} END"
    )


def _sl_fv(table: CaptureTable, version: str) -> str:
    rows = []
    for c in table.columns:
        if c.kind in algebra.KINDS:
            value, raw = _sl_spelling(c.kind, f"{version}.{_q(c.name)}")
            rows.append(f"SELECT {_lit(f'{table.name}.{c.name}=')} AS h, {value} AS v, {raw} AS r")
    return " UNION ALL ".join(rows)


def _sl_table(table: CaptureTable, feed_table: str) -> list[str]:
    t, qt, ft = table.name, _q(table.name), _q(feed_table)
    fix = (f"CASE WHEN k IS NULL OR (substr(k, 1, 5) <> {_lit(RAW_PREFIX)} AND length(CAST(k AS BLOB)) > "
           f"{MAX_FEED_KEY}) THEN {_lit(t + ':*')} ELSE k END")
    fresh = (f"(SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info({_lit(t)}) "
             f"ORDER BY name)) IS {_lit(table.names())}")
    coarse = (f"INSERT INTO {ft} (key) SELECT k FROM (SELECT {_lit(t)} AS k UNION ALL SELECT {_lit(t + ':*')})")
    out = []
    for name, when, version in (("ins", "INSERT", "NEW"), ("upd", "UPDATE", None), ("del", "DELETE", "OLD")):
        trig = _q(f"{_fname(t)}_{name}")
        out.append(f"DROP TRIGGER IF EXISTS {trig}")
        out.append(f"DROP TRIGGER IF EXISTS {_q(f'{_fname(t)}_{name}_drift')}")
        if table.fallback() is not None:
            out.append(f"CREATE TRIGGER {trig} AFTER {when} ON {qt} FOR EACH ROW BEGIN {coarse}; END")
            continue
        pk = table.pk[0]
        pk_kind = {c.name: c.kind for c in table.columns}[pk]
        parts = [f"SELECT {_lit(t)} AS k"]
        if version is not None:
            pv, pr = _sl_spelling(pk_kind, f"{version}.{_q(pk)}")
            parts.append(f"SELECT {_lit(t + '/*')}")
            parts.append(f"SELECT {_sl_key(_lit(t + ':'), pv, pr, _lit(''))}")
            fv = _sl_fv(table, version)
            if fv:
                parts.append(f"SELECT {_sl_key('f.h', 'f.v', 'f.r', _lit(''))} FROM ({fv}) AS f")
                parts.append(f"SELECT {_sl_key('f.h', 'f.v', 'f.r', _lit('/*'))} FROM ({fv}) AS f")
        else:
            for v in ("OLD", "NEW"):
                pv, pr = _sl_spelling(pk_kind, f"{v}.{_q(pk)}")
                parts.append(f"SELECT {_sl_key(_lit(t + ':'), pv, pr, _lit(''))}")
            parts.append(f"SELECT {_lit(t + ':*')} WHERE OLD.{_q(pk)} IS NOT NEW.{_q(pk)}")
            ch = " UNION ALL ".join(
                f"SELECT {_lit(c.name)} AS x WHERE OLD.{_q(c.name)} IS NOT NEW.{_q(c.name)} "
                f"OR typeof(OLD.{_q(c.name)}) <> typeof(NEW.{_q(c.name)})"
                for c in table.columns
            )
            parts.append(f"SELECT {_lit(t + '/')} || ch.x FROM ({ch}) AS ch")
            fvs = [s for s in (_sl_fv(table, "OLD"), _sl_fv(table, "NEW")) if s]
            if fvs:
                fv = " UNION ".join(fvs)
                parts.append(f"SELECT {_sl_key('f.h', 'f.v', 'f.r', _lit(''))} FROM ({fv}) AS f")
                parts.append(f"SELECT {_sl_key('f.h', 'f.v', 'f.r', chr(39) + '/' + chr(39) + ' || ch.x')} "
                             f"FROM ({fv}) AS f, ({ch}) AS ch")
        keys = " UNION ALL ".join(parts)
        # the column check runs once per row, in the WHEN clauses of two triggers
        out.append(
            f"CREATE TRIGGER {trig} AFTER {when} ON {qt} FOR EACH ROW WHEN {fresh} BEGIN "
            f"INSERT INTO {ft} (key) SELECT DISTINCT {fix} FROM ({keys}); END"
        )
        drift = _q(f"{_fname(t)}_{name}_drift")
        out.append(f"DROP TRIGGER IF EXISTS {drift}")
        out.append(f"CREATE TRIGGER {drift} AFTER {when} ON {qt} FOR EACH ROW WHEN NOT ({fresh}) BEGIN {coarse}; END")
    out.append(f"INSERT OR REPLACE INTO {_REGISTRY} (tbl, spec) VALUES ({_lit(t)}, {_lit(table.spec())})")
    return out


# -- MySQL / MariaDB ----------------------------------------------------------------------------


def _mq(ident: str) -> str:
    return "`" + ident.replace("`", "``") + "`"


def _my_text(col: str) -> str:
    return f"CONVERT(CAST({col} AS CHAR) USING utf8mb4) COLLATE utf8mb4_bin"


def _my_lit(text: str) -> str:
    return "_utf8mb4" + _lit(text.replace("\\", "\\\\")) + " COLLATE utf8mb4_bin"


def _my_spellings(kind: str, col: str) -> list[str]:
    e = _my_text(col)
    return [f"CASE WHEN {col} IS NULL THEN 'null' ELSE {t.replace('{e}', e).replace('{v}', col)} END"
            for t in SPELLING[kind]["mysql"]]


def _my_fv(table: CaptureTable, version: str) -> str:
    rows = []
    for c in table.columns:
        if c.kind in algebra.KINDS:
            for s in _my_spellings(c.kind, f"{version}.{_mq(c.name)}"):
                rows.append(f"SELECT {_my_lit(f'{table.name}.{c.name}=')} AS h, {s} AS v")
    return " UNION ALL ".join(rows)


def _my_cascade(table: str, feed: str) -> str:
    """Return the statement appending the table keys of every table a write of ``table`` may
    change through its foreign keys' actions (``ON DELETE/UPDATE CASCADE``, ``SET NULL``,
    ``SET DEFAULT``), transitively: InnoDB's cascaded actions fire no triggers. Read from the
    schema when the trigger runs, so a constraint added later is covered without reinstalling."""
    acts = ("(r.DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR r.UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))")
    rc = "information_schema.REFERENTIAL_CONSTRAINTS r"
    return (f"INSERT INTO {feed} (`key`) SELECT k FROM (WITH RECURSIVE d (t) AS ("
            f"SELECT r.TABLE_NAME FROM {rc} WHERE r.CONSTRAINT_SCHEMA = DATABASE() "
            f"AND r.REFERENCED_TABLE_NAME = {_lit(table)} AND {acts} "
            f"UNION SELECT r.TABLE_NAME FROM {rc} JOIN d ON r.REFERENCED_TABLE_NAME = d.t "
            f"WHERE r.CONSTRAINT_SCHEMA = DATABASE() AND {acts}) "
            "SELECT CONVERT(t USING utf8mb4) COLLATE utf8mb4_bin AS k FROM d "
            "UNION ALL SELECT CONCAT(CONVERT(t USING utf8mb4) COLLATE utf8mb4_bin, '/*') FROM d "
            "UNION ALL SELECT CONCAT(CONVERT(t USING utf8mb4) COLLATE utf8mb4_bin, ':*') FROM d) AS x")


def _my_table(table: CaptureTable, feed_table: str) -> list[str]:
    t, qt, ft, lock = table.name, _mq(table.name), _mq(feed_table), _mq(feed_table + "_lock")
    coarse_keys = f"SELECT {_my_lit(t)} AS k UNION ALL SELECT {_my_lit(t + ':*')}"
    fix = f"CASE WHEN k IS NULL OR LENGTH(k) > {MAX_FEED_KEY} THEN {_my_lit(t + ':*')} ELSE k END"
    fresh = (f"(SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY BINARY COLUMN_NAME SEPARATOR ',') "
             f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {_lit(t)}) "
             f"= {_my_lit(table.names())}")
    take_lock = f"INSERT INTO {lock} (id) VALUES (1) ON DUPLICATE KEY UPDATE id = id"
    out = []
    for name, when, version in (("ins", "INSERT", "NEW"), ("upd", "UPDATE", None), ("del", "DELETE", "OLD")):
        trig = _mq(f"{_fname(t)}_{name}")
        out.append(f"DROP TRIGGER IF EXISTS {trig}")
        if table.fallback() is not None:
            cascade = f"{_my_cascade(t, ft)}; " if when != "INSERT" else ""
            out.append(f"CREATE TRIGGER {trig} AFTER {when} ON {qt} FOR EACH ROW BEGIN {take_lock}; {cascade}"
                       f"INSERT INTO {ft} (`key`) {coarse_keys}; END")
            continue
        pk = table.pk[0]
        pk_kind = {c.name: c.kind for c in table.columns}[pk]
        parts = [f"SELECT {_my_lit(t)} AS k"]
        if version is not None:
            parts.append(f"SELECT {_my_lit(t + '/*')}")
            parts += [f"SELECT CONCAT({_my_lit(t + ':')}, {s})" for s in _my_spellings(pk_kind, f"{version}.{_mq(pk)}")]
            fv = _my_fv(table, version)
            if fv:
                parts.append(f"SELECT CONCAT(f.h, f.v) FROM ({fv}) AS f")
                parts.append(f"SELECT CONCAT(f.h, f.v, '/*') FROM ({fv}) AS f")
        else:
            for v in ("OLD", "NEW"):
                parts += [f"SELECT CONCAT({_my_lit(t + ':')}, {s})" for s in _my_spellings(pk_kind, f"{v}.{_mq(pk)}")]
            parts.append(f"SELECT {_my_lit(t + ':*')} FROM DUAL WHERE NOT (OLD.{_mq(pk)} <=> NEW.{_mq(pk)})")
            ch = " UNION ALL ".join(
                f"SELECT {_my_lit(c.name)} AS x FROM DUAL WHERE NOT "
                f"(CAST(OLD.{_mq(c.name)} AS BINARY) <=> CAST(NEW.{_mq(c.name)} AS BINARY))"
                for c in table.columns
            )
            parts.append(f"SELECT CONCAT({_my_lit(t + '/')}, ch.x) FROM ({ch}) AS ch")
            fvs = [x for x in (_my_fv(table, "OLD"), _my_fv(table, "NEW")) if x]
            if fvs:
                fv = " UNION ALL ".join(fvs)
                parts.append(f"SELECT CONCAT(f.h, f.v) FROM ({fv}) AS f")
                parts.append(f"SELECT CONCAT(f.h, f.v, '/', ch.x) FROM ({fv}) AS f, ({ch}) AS ch")
        keys = " UNION ALL ".join(parts)
        cascade = f"{_my_cascade(t, ft)}; " if when != "INSERT" else ""
        out.append(
            f"CREATE TRIGGER {trig} AFTER {when} ON {qt} FOR EACH ROW BEGIN {take_lock}; {cascade}"
            f"IF {fresh} THEN INSERT INTO {ft} (`key`) SELECT DISTINCT {fix} FROM ({keys}) AS s; "
            f"ELSE INSERT INTO {ft} (`key`) {coarse_keys}; END IF; END"
        )
    out.append(f"INSERT INTO {_REGISTRY} (tbl, spec) VALUES ({_lit(t)}, {_lit(table.spec())}) "
               "ON DUPLICATE KEY UPDATE spec = VALUES(spec)")
    return out



def capture_ddl(dialect: str, tables: Iterable[CaptureTable], feed_table: str = "cachedeps_change",
                ddl_events: bool = True) -> list[str]:
    """Return the idempotent statements installing capture for ``tables`` on ``dialect``.

    Run them in one transaction (an Alembic ``op.execute`` each, or :func:`install`).
    ``ddl_events``: also install PostgreSQL's event trigger (needs a superuser).

    Raises:
        ConfigurationError: an unsupported dialect.
    """
    dialect = _check_dialect(dialect)
    tables = list(tables)
    if dialect == "postgresql":
        out = _pg_shared(feed_table) + (_pg_event() if ddl_events else [])
        for table in tables:
            out.extend(_pg_table(table))
        return out
    out = [f"CREATE TABLE IF NOT EXISTS {_REGISTRY} (tbl VARCHAR(255) PRIMARY KEY, spec TEXT NOT NULL)"]
    if dialect == "mysql":
        out[0] += " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        for table in tables:
            out.extend(_my_table(table, feed_table))
        return out
    for table in tables:
        out.extend(_sl_table(table, feed_table))
    return out


def remove_ddl(dialect: str, tables: Iterable[str], everything: bool = False) -> list[str]:
    """Return the statements removing capture from ``tables`` (names); with ``everything``
    also the shared objects (staging tables, functions, event triggers, the registry)."""
    dialect = _check_dialect(dialect)
    out: list[str] = []
    for t in tables:
        if dialect == "postgresql":
            out.append(f"DO $cd$ BEGIN IF to_regclass({_lit(_q(t))}) IS NOT NULL THEN "
                       + " ".join(f"DROP TRIGGER IF EXISTS cachedeps_capture_{n} ON {_q(t)};"
                                  for n in ("ins", "upd", "del", "trunc"))
                       + " END IF; END $cd$")
            out.append(f"DROP FUNCTION IF EXISTS {_fname(t)}()")
            out.append(f"DO $cd$ BEGIN IF to_regclass('{_REGISTRY}') IS NOT NULL THEN "
                       f"DELETE FROM {_REGISTRY} WHERE tbl = {_lit(t)}; END IF; END $cd$")
        else:
            quote = _mq if dialect == "mysql" else _q
            for n in ("ins", "upd", "del", "ins_drift", "upd_drift", "del_drift"):
                if dialect == "sqlite" or not n.endswith("_drift"):
                    out.append(f"DROP TRIGGER IF EXISTS {quote(_fname(t) + '_' + n)}")
    if everything:
        if dialect == "postgresql":
            out += [
                "DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_end",
                "DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_drop",
                "DROP FUNCTION IF EXISTS cachedeps_capture_ddl()",
                f"DROP TABLE IF EXISTS {_TX}",
                "DROP FUNCTION IF EXISTS cachedeps_capture_commit()",
                "DROP FUNCTION IF EXISTS cachedeps_capture_flush(boolean)",
                "DROP FUNCTION IF EXISTS cachedeps_capture_put(text, text[])",
                f"DROP TABLE IF EXISTS {_STAGE}",
            ]
        out.append(f"DROP TABLE IF EXISTS {_REGISTRY}")
    return out


