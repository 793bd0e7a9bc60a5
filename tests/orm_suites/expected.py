"""Failures of the ORMs' own tests under cachedeps that are explained, each with its class
(see :mod:`tests.orm_suites.classify`) and the reason. A test listed here that passes is
fine; a failure not listed (and not query counting) fails the harness."""

from __future__ import annotations

__all__ = ["DJANGO", "SQLA"]

_FEED_LAST = "asserts on the last captured statement; cachedeps' feed statements come after the write"
_OLD_ROWS_FIRST = "asserts on the first captured statement; cachedeps reads the rows a write changes first"

#: Django test id -> (class, reason); a subtest matches its test's id
DJANGO: dict[str, tuple[str, str]] = {
    "queries.test_db_returning.ReturningValuesTests.test_insert_returning": ("d", _FEED_LAST),
    "queries.test_db_returning.ReturningValuesTests.test_insert_returning_multiple": ("d", _FEED_LAST),
    "queries.test_explain.ExplainTests.test_basic": (
        "d", "asserts the first captured statement is the EXPLAIN; the feed poll runs first"),
    "model_inheritance.tests.ModelInheritanceTests.test_create_child_no_update": ("d", _OLD_ROWS_FIRST),
    "model_inheritance.tests.ModelInheritanceTests.test_update_parent_filtering": ("d", _OLD_ROWS_FIRST),
    "queries.tests.Queries6Tests.test_col_alias_quoted": (
        "d", "asserts on the last captured statement; in autocommit a feed poll comes after the read"),
    "aggregation.tests.AggregateAnnotationPruningTests": (
        "d", "counts SELECTs in the first captured statement; in autocommit that is the feed poll"),
}

#: Failures of Django's stock backends in the autocommit mode (``--compare`` runs, SQLite and
#: PostgreSQL): the tests count queries that the per-test transaction used to absorb (COMMIT,
#: savepoints), need the content types and permissions that post_migrate recreates after a
#: flush, or lock rows with ``select_for_update()`` outside any transaction (PostgreSQL:
#: Django's own TransactionManagementError, raised while compiling the query).
_PLAIN_AUTOCOMMIT = ("c", "fails with Django's stock backend in the autocommit mode too", frozenset({"autocommit"}))
DJANGO.update(dict.fromkeys([
    "basic.tests.ModelInstanceCreationTests.test_save_parent_primary_with_default",
    "basic.tests.SelectOnSaveTests.test_select_on_save_lying_update",
    "bulk_create.tests.BulkCreateTests.test_efficiency",
    "bulk_create.tests.BulkCreateTests.test_explicit_batch_size_efficiency",
    "bulk_create.tests.BulkCreateTests.test_explicit_batch_size_respects_max_batch_size",
    "bulk_create.tests.BulkCreateTests.test_non_auto_increment_pk_efficiency",
    "bulk_create.tests.BulkCreateTests.test_set_pk_and_insert_single_item",
    "bulk_create.tests.BulkCreateTests.test_set_pk_and_query_efficiency",
    "composite_pk.test_models.CompositePKModelsTests.test_permissions",
    "delete.tests.DeletionTests.test_bulk",
    "delete.tests.DeletionTests.test_can_defer_constraint_checks",
    "delete.tests.DeletionTests.test_large_delete",
    "delete.tests.DeletionTests.test_large_delete_related",
    "delete.tests.DeletionTests.test_only_referenced_fields_selected",
    "delete.tests.DeletionTests.test_proxied_model_duplicate_queries",
    "delete.tests.FastDeleteTests.test_fast_delete_aggregation",
    "delete.tests.FastDeleteTests.test_fast_delete_all",
    "delete.tests.FastDeleteTests.test_fast_delete_combined_relationships",
    "delete.tests.FastDeleteTests.test_fast_delete_empty_no_update_can_self_select",
    "delete.tests.FastDeleteTests.test_fast_delete_empty_result_set",
    "delete.tests.FastDeleteTests.test_fast_delete_fk",
    "delete.tests.FastDeleteTests.test_fast_delete_full_match",
    "delete.tests.FastDeleteTests.test_fast_delete_inheritance",
    "delete.tests.FastDeleteTests.test_fast_delete_joined_qs",
    "delete.tests.FastDeleteTests.test_fast_delete_large_batch",
    "delete.tests.FastDeleteTests.test_fast_delete_m2m",
    "delete.tests.FastDeleteTests.test_fast_delete_qs",
    "delete.tests.FastDeleteTests.test_fast_delete_revm2m",
    "delete_regress.tests.DeleteTests.test_self_reference_with_through_m2m_at_second_level",
    "delete_regress.tests.SetQueryCountTests.test_set_querycount",
    "delete_regress.tests.Ticket19102Tests.test_ticket_19102_annotate",
    "delete_regress.tests.Ticket19102Tests.test_ticket_19102_defer",
    "delete_regress.tests.Ticket19102Tests.test_ticket_19102_extra",
    "delete_regress.tests.Ticket19102Tests.test_ticket_19102_select_related",
    "fixtures.tests.FixtureLoadingTests.test_dumpdata_objects_with_prefetch_related",
    "fixtures.tests.FixtureLoadingTests.test_loading_and_dumping",
    "fixtures.tests.FixtureLoadingTests.test_output_formats",
    "filtered_relation.tests.FilteredRelationTests.test_select_for_update",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_diamond_mti",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_false",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_false_with_existing_parent",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_parent",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_with_existing_grandparent",
    "force_insert_update.tests.ForceInsertInheritanceTests.test_force_insert_with_grandparent",
    "generic_relations.tests.GenericRelationsTests.test_add_bulk_false",
    "many_to_many.tests.ManyToManyTests.test_fast_add_ignore_conflicts",
    "many_to_one_null.tests.ManyToOneNullTests.test_set_clear_non_bulk",
    "model_inheritance.tests.ModelInheritanceDataTests.test_update_query_counts",
    "model_inheritance.tests.ModelInheritanceTests.test_create_diamond_mti_common_parent",
    "model_inheritance.tests.ModelInheritanceTests.test_create_diamond_mti_default_pk",
    "multiple_database.tests.AuthTestCase.test_dumpdata",
    "multiple_database.tests.QueryTestCase.test_contenttype_in_separate_db",
    "multiple_database.tests.RouterTestCase.test_generic_key_cross_database_protection",
    "proxy_models.tests.ProxyModelTests.test_permissions_created",
    "queries.test_bulk_update.BulkUpdateNoteTests.test_batch_size",
    "queries.test_bulk_update.BulkUpdateNoteTests.test_foreign_keys_do_not_lookup",
    "queries.test_bulk_update.BulkUpdateNoteTests.test_multiple_fields",
    "queries.test_bulk_update.BulkUpdateNoteTests.test_simple",
    "queries.test_bulk_update.BulkUpdateTests.test_database_routing",
    "queries.tests.Queries5Tests.test_ordering",
    "update_only_fields.tests.UpdateOnlyFieldsTests.test_num_queries_inheritance",
    "update_only_fields.tests.UpdateOnlyFieldsTests.test_update_fields_fk_defer",
    "update_only_fields.tests.UpdateOnlyFieldsTests.test_update_fields_inheritance",
    "update_only_fields.tests.UpdateOnlyFieldsTests.test_update_fields_inheritance_defer",
], _PLAIN_AUTOCOMMIT))

#: The modules beyond the issue's list (model fields, django.contrib.postgres, database
#: functions, forms, serializers, ...), run on PostgreSQL and MariaDB in the autocommit mode
_POLL_FIRST = ("d", "asserts on the first captured statement; in autocommit the feed poll runs first",
               frozenset({"autocommit"}))
DJANGO.update(dict.fromkeys([
    "model_fields.test_jsonfield.TestQuerying.test_key_sql_injection",
    "postgres_tests.test_hstore.TestQuerying.test_key_sql_injection",
    "db_functions.comparison.test_cast.CastTests.test_expression_wrapped_with_parentheses_on_postgresql",
], _POLL_FIRST))
#: Django's tests of execute wrappers and of the queries log: cachedeps installs execute
#: wrappers of its own on every connection (the raw-SQL write tracker, the uncached-read
#: guard) and runs its feed statements on the connection, through the wrappers, so that the
#: wrappers, assertNumQueries and the debug toolbar see them
_WRAPPERS = ("d", "inspects the connection's execute wrappers or the statements they and the queries log "
             "see; cachedeps' own wrappers and feed statements are among them")
DJANGO.update(dict.fromkeys([
    "backends.base.test_base.ExecuteWrapperTests.test_wrapper_connection_specific",
    "backends.base.test_base.ExecuteWrapperTests.test_nested_wrapper_invoked",
    "backends.base.test_base.ExecuteWrapperTests.test_wrapper_invoked_many",
    "backends.base.test_base.DatabaseWrapperLoggingTests.test_commit_debug_log",
], _WRAPPERS))
DJANGO["backends.base.test_base.ExecuteWrapperTests.test_outer_wrapper_blocks"] = (
    "d", "its execute wrapper answers every statement without running it, cachedeps' feed append "
    "(classified unknown SQL is a write: the statement 'The database never sees this') included, "
    "which then finds no result to read")
#: The harness's own flush (only the tables with rows) replaces the backends' sql_flush,
#: which these tests inspect; with the stock backends under the harness they fail the same way
DJANGO.update(dict.fromkeys([
    "backends.sqlite.test_operations.SQLiteOperationsTests.test_sql_flush",
    "backends.postgresql.test_operations.PostgreSQLOperationsTests.test_sql_flush",
    "backends.mysql.test_operations.MySQLOperationsTests.test_sql_flush",
], ("c", "inspects the backend's sql_flush, which the harness replaces (stock backends fail it too)")))
#: Failures of the stock backends in the autocommit mode (compare runs) in the backends and
#: migrations modules: tests that need the per-test transaction, or open connections of
#: their own (pools, isolation levels, server-side cursors) that the mode's flush then meets
DJANGO.update(dict.fromkeys([
    "backends.mysql.test_features.TestFeatures.test_supports_transactions",
    "backends.postgresql.test_compilation.BulkCreateUnnestTests",
    "backends.postgresql.test_server_side_cursors.ServerSideCursorsPostgres",
    "backends.postgresql.tests.Tests.test_connect_invalid_isolation_level",
    "backends.postgresql.tests.Tests.test_connect_isolation_level",
    "backends.postgresql.tests.Tests.test_connect_pool",
    "backends.postgresql.tests.Tests.test_connect_pool_set_to_true",
    "backends.postgresql.tests.Tests.test_connect_pool_with_timezone",
    "backends.postgresql.tests.Tests.test_pooling_health_checks",
    "migrations.test_loader.LoaderTests.test_loading_squashed",
], _PLAIN_AUTOCOMMIT))
DJANGO["postgres_tests.test_operations.RemoveCollationTests.test_remove"] = (
    "d", "CreateCollationTests.test_create, before it, fails its query count (the feed statements "
    "a DDL statement adds in autocommit) before it drops the collation it made; this test meets it",
    frozenset({"autocommit"}))

_EVENTS = ("d", "inspects the Session's event machinery that install() and the harness hook into: the "
           "execution options (the harness's 'cachedeps' marker), the order of events (the feed "
           "poll begins the connection before the flush), listeners called without arguments")

_MARKER = ("d", "compares the execution options SQLAlchemy passes on to an eager loader's statements "
           "with the ones given; the harness marks every select with the execution option "
           "cachedeps=True, passed on as well")
_VERIFY_LOADS = ("d", "counts the class's load events; verify mode loads every hit again in a private "
                 "session, which fires them too (passes with --no-verify)")

_READ_BACK = ("d", "asserts the exact statements a flush runs (assert_sql_execution, 'Additional SQL "
              "statements remain'); the one left is cachedeps' read of the rows the flush inserted "
              "(SELECT ... AS _cd_0 ... WHERE id IN (...)), for their keys")
_REINVOKED = ("d", "asserts that every Session.get_bind() call a query makes has exactly the statement's "
              "clause and mapper; a cache miss runs the statement through "
              "ORMExecuteState.invoke_statement() (SQLAlchemy's documented re-execution for caching), "
              "which adds _sa_skip_events=True to the bind arguments. The clause and mapper are the "
              "statement's own in every call (tests/sqla/test_statement_binds.py)")

#: SQLAlchemy test node id (or test class) -> (class, reason); a parametrized test matches its
#: base id, a test class named after the dialect (``UpdateDeleteTest_sqlite+pysqlite_3_40_1``)
#: its plain name
SQLA: dict[str, tuple[str, str]] = {
    "test/ext/test_baked.py::LikeQueryTest::test_get_includes_getclause": (
        "d", "counts the entries of the baked query's own cache of compiled forms; a get that "
        "cachedeps answers from the row's cached state compiles nothing there (the objects "
        "loaded are checked, and equal)"),
    "test/orm/test_events.py::ORMExecuteTest": _EVENTS,
    "test/orm/test_events.py::SessionEventsTest": _EVENTS,
    "test/orm/test_session.py::NewStyleExecutionTest::test_eagerloader_exec_option": _MARKER,
    "test/orm/dml/test_orm_upd_del_basic.py::UpdateDeleteTest::test_update_returning_eagerload_propagate": _MARKER,
    "test/orm/test_session.py::SessionStateTest::test_execution_options_flush_before_cursor_execute": (
        "d", "collects the execution options of every statement a flush runs; cachedeps reads the "
        "rows the flush changes (old values before, new values after) on the flush's connection"),
    "test/orm/test_session.py::ReplaceStaleIdentityTest::test_replace_expired_identity_emits_no_sql": (
        "d", "asserts the flush emits no SELECT; cachedeps reads the old values of the row the "
        "flush deletes first"),
    "test/orm/test_session.py::NewStyleExecutionTest::test_unbuffered_result_session_is_closed": (
        "d", "reads an unbuffered result after close()/expunge_all() and expects the ORM's error for "
        "rows becoming objects of a discarded identity map; a cached read is buffered (a miss reads "
        "every row to store it, a hit is built from the entry): its objects joined the session while "
        "it was open, as with Result.freeze()"),
    "test/orm/test_query.py::SessionBindTest": _REINVOKED,
    "test/orm/test_bind.py::BindIntegrationTest::test_bind_through_execute": (
        "d", "asserts the exact sequence of get_bind() and _connection_for_bind() calls one execute() "
        "makes (_connection_for_bind mocked); cachedeps resolves the statement's bind with the same "
        "arguments and begins the transaction on it (Session.connection(), which passes "
        "execution_options=None) to poll the change feed before its lookup; the statement's own "
        "execution then resolves and connects again"),
    "test/orm/test_merge.py::MergeTest::test_attribute_cascade": _VERIFY_LOADS,
    "test/orm/test_merge.py::MergeTest::test_many_to_many_cascade": _VERIFY_LOADS,
    "test/orm/test_merge.py::MergeTest::test_one_to_many_cascade": _VERIFY_LOADS,
    "test/orm/test_cascade.py::PartialFlushTest::test_o2m_m2o": (
        "c", "drops a Session that flushed without closing it, then flushes from a new one: the "
        "first one's SQLite write lock goes only when the garbage collector frees the session's "
        "reference cycles; the plain run fails it too when the collector has not run (alone: "
        "--compare --paths test/orm/test_cascade.py::PartialFlushTest). cachedeps holds no "
        "reference to the session (tests/sqla/test_session_lifetime.py)"),
    "test/orm/test_unitofworkv2.py::EagerDefaultsSettingTest::test_eager_default_setting_inserts": _READ_BACK,
    "test/orm/test_unitofworkv2.py::EagerDefaultsSettingTest::test_eager_default_setting_inserts_no_pks": _READ_BACK,
    "test/orm/dml/test_bulk.py::BulkIssue6793Test::test_issue_6793": _READ_BACK,
    "test/orm/test_defaults.py::ComputedDefaultsOnUpdateTest::test_insert_computed": _READ_BACK,
    "test/orm/dml/test_orm_upd_del_basic.py::UpdateDeleteTest::test_routing_session": (
        "d", "[fetch-*] records the clause of every Session.get_bind() call; cachedeps resolves the "
        "bind of the 'fetch' select itself (is it the cache's database; begin the transaction, "
        "which polls the feed) before SQLAlchemy runs it: the same Select appears more than once"),
    "test/orm/test_core_compilation.py::PropagateAttrsTest::test_autoflushes": (
        "d", "patches Session._autoflush and expects one call per execute(); a hit answers in "
        "do_orm_execute, before SQLAlchemy's autoflush, and is served only when the session holds "
        "no pending changes (new, dirty or deleted): that flush has nothing to do"),
    "test/orm/test_expire.py::ExpireTest::test_load_only_relationships": (
        "d", "[*-no_attrs-not_pk_plus_pending-*-joined] checks that refresh() put the joined-eager "
        "collection in __dict__; a refresh served from the cached row state fills the column "
        "attributes only and the collection loads lazily on access (same rows, one query later)"),
}
