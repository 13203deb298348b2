// Loaded between require.js and embed-amd.js on pages that embed Jupyter widgets.
//
// embed-amd.js (@jupyter-widgets/html-manager 1.0.6) defines the AMD modules
// "@jupyter-widgets/{base,controls,html-manager}" and "@jupyter-widgets/html-manager/dist/libembed-amd";
// each one loads its icon fonts from the folder of its own module URL (RequireJS `module.uri`). By
// default RequireJS resolves those against the page's folder (…/@jupyter-widgets/*.woff2 and
// …/@jupyter-widgets/html-manager/dist/*.woff2: 404s). Map both module paths to the vendored copy
// next to this script (the hashed font files sit beside embed-amd.js), computed from this script's
// own URL so that it works at any page depth, over http(s) and from file://.
// (Setting window.__jupyter_widgets_assets_path__ alone is not enough.)
(function () {
  var script = document.currentScript;
  if (!script || typeof require === "undefined" || !require.config) {
    return;
  }
  var base = new URL("html-manager", script.src).href;
  require.config({
    paths: {
      "@jupyter-widgets/html-manager/dist": base,
      "@jupyter-widgets": base,
    },
  });
})();
