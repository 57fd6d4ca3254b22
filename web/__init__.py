"""The aiohttp application, its REST API and pages, and the ``hoinghi`` CLI."""
