"""Each inline script once per page.

In this Jupyter Book 1 / Sphinx 7.4 build, the inline configuration scripts that sphinx-thebe and
sphinx-togglebutton add once the builder exists reach every page twice (once with the file name None,
once with ""): the page then declares `const THEBE_JS_URL` twice and the browser reports "Identifier
'THEBE_JS_URL' has already been declared". This keeps the first of scripts that are the same (same
file, priority, attributes and body).
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts is None:
        return
    seen, kept = set(), []
    for script in scripts:
        # an inline script is added once with filename None and once with "": the same script
        key = (str(getattr(script, "filename", script) or ""), getattr(script, "priority", None),
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: the builder and other handlers hold this list


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)  # after the handlers that add scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
