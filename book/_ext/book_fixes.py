"""A Sphinx extension with two fixes for the book's HTML (loaded by _config.yml: sphinx.local_extensions).

Cell outputs wrap instead of scrolling sideways, so a run's summary line is never cut before its number, and
code is set at a size where the 88 characters a chapter's code line may have fit the column at 1280 px.

With Sphinx 7.4, inline scripts that extensions add while reading (sphinx-thebe's `const THEBE_JS_URL = ...`,
sphinx-togglebutton's settings) end up twice in every page; the second `const` is a JavaScript SyntaxError in
the browser console. Keep the first copy of each inline script.
"""


def dedupe_inline_scripts(_app, _pagename, _templatename, context, _doctree):  # Sphinx's html-page-context
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        if not getattr(script, "filename", script):  # inline: no file, only a body
            key = repr(sorted(script.attributes.items()))
            if key in seen:
                continue
            seen.add(key)
        scripts.append(script)
    context["script_files"] = scripts


# 12 px: the 88 characters a chapter's code line may have fit the column at 1280 px
WRAP_OUTPUTS = ("<style>div.cell_output pre { white-space: pre-wrap; overflow-wrap: anywhere; } "
                "div.cell.docutils div.cell_input pre { font-size: 12px !important; }</style>")


def wrap_outputs(_app, _pagename, _templatename, context, _doctree):  # Sphinx's html-page-context
    context["metatags"] = context.get("metatags", "") + WRAP_OUTPUTS


def setup(app):
    app.connect("html-page-context", dedupe_inline_scripts)
    app.connect("html-page-context", wrap_outputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
