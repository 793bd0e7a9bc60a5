"""The ORMs' own test suites run through cachedeps (issue 9, deliverable 7).

``python -m tests.orm_suites.run django|sqla ...`` fetches the sdist of the installed
Django or SQLAlchemy into ``.cache/orm_suites`` and runs its own tests with cachedeps in
the way: every Django model cached through the ``django_cachedeps`` backends, every
SQLAlchemy session installed, verify mode on where the code has it. Failures are sorted
into classes (see :mod:`tests.orm_suites.classify`); ``test_orm_suites.py`` runs a short
subset in ``make test``, ``make test-orm`` the whole list.
"""
