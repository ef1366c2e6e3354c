"""The local console (`invoke ui`): the runs, the registry and what is deployed where, as
web pages read from the same records the tasks use.

- ``app``: the Starlette application and its guards (loopback, Host, token, CSRF);
- ``pages``: the route table, one entry per page, shared by the server and the export;
- ``source``: what the pages read (the actions, opened once per request);
- ``links``: URLs as the server serves them or as files of a static export;
- ``render``: Jinja2 templates (``templates/``), escaped by default;
- ``export``: every page written as a file that opens from disk.
"""
