"""The status page (``railguard web``, and the daemon's pages): overview, one page per app, a public page.

* :mod:`model`: the views as plain values, from the same owners ``railguard status`` reads.
* :mod:`charts`: server-rendered SVG (no JavaScript, nothing loaded from elsewhere).
* :mod:`pages`: the HTML, from Jinja2 templates with autoescaping.
* :mod:`app`: the routes (pages and ``/api/``), and who may read them.
"""
