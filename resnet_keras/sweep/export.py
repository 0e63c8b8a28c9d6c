"""A run's report: its executed notebook as one self-contained HTML page (`make sweep`, `make reports`)."""

from resnet_keras.files import write_text

REPORT_STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 62rem; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.8rem; } h2 { font-size: 1.35rem; margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
tr:nth-child(even) td { background: #f6f8fa; }
img { max-width: 100%; height: auto; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
code { font-size: 0.9em; }
a.anchor-link { visibility: hidden; text-decoration: none; margin-left: 0.3rem; color: #8c959f; }
h1:hover a.anchor-link, h2:hover a.anchor-link, h3:hover a.anchor-link { visibility: visible; }
.jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt { display: none; }
"""


def export_report(nb_path, html_path, title):
    """The executed notebook as a report: outputs and text without code, readable offline.

    nbconvert's "basic" template gives the cells' HTML without the lab
    template's ~260 KB of styles and without the scripts (require.js,
    MathJax) it loads from the network; the page wraps it with a few lines of
    its own style. Cells tagged "remove_cell" (a notebook's title for
    JupyterLab, which the report's own title, naming the run's network,
    replaces) are left out, and so are the outputs of cells tagged
    "remove_output" (the live per-epoch log, which the report's table of
    every epoch replaces).
    """
    import html

    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config({"TagRemovePreprocessor": {"enabled": True, "remove_cell_tags": ["remove_cell"],
                                               "remove_all_outputs_tags": ["remove_output"]}})
    exporter = HTMLExporter(config=config, template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4), resources={"metadata": {"name": title}})
    write_text(html_path, f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                          f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                          f"<title>{html.escape(title)}</title>\n<style>{REPORT_STYLE}</style>\n</head>\n"
                          f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")
