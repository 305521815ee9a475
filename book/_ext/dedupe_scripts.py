"""Each inline script once per page.

sphinx-thebe and sphinx-togglebutton add their inline configuration scripts on `env-before-read-docs`,
which fires twice in a Jupyter Book 1 build here: the page then declares `const THEBE_JS_URL` twice
and the browser stops with "Identifier 'THEBE_JS_URL' has already been declared". This drops a
script that the page already has (same file, same attributes, same body).
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (str(script), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
