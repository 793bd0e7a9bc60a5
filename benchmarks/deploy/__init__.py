"""``python -m benchmarks deploy``: the demo site as deployed (gunicorn workers, PostgreSQL,
memcached, Redis) under HTTP load, without a cache, with Django's ``cache_page``, with
django-cachalot and django-cacheops, and with cachedeps. ``run.py`` drives it (in the
benchmark's own virtual environment, ``.cache/bench-venv``); ``settings.py`` turns each
configuration on; ``load.lua`` is the wrk script; ``stale.py`` checks every page served.
"""
