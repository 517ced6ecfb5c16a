"""The staff console in the browser (Starlette, Jinja2, a vendored htmx): see app.py."""
