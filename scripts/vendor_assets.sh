#!/usr/bin/env bash
# Regenerate _vendor/: the JavaScript and fonts the built book needs offline (MathJax 3, RequireJS,
# the Jupyter widgets HTML manager), copied from the npm registry with `npm pack`.
#
# Only maintainers run this (it needs node/npm and the registry); readers use the committed files.
# The packed subset, versions and licences are described in _vendor/README.md; the authored file
# _vendor/widgets-require-config.js is not touched. After running, review `git diff --stat _vendor`
# and update _vendor/README.md when a version changes.
#
# Usage: scripts/vendor_assets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MATHJAX_VERSION=3.2.2
REQUIREJS_VERSION=2.3.8
HTML_MANAGER_VERSION=1.0.6   # the version myst-nb (Jupyter Book 1.x) links from its CDN default

command -v npm >/dev/null 2>&1 || { echo "vendor_assets: npm is required" >&2; exit 1; }

VENDOR=_vendor
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

unpack() {  # unpack NAME@VERSION into $TMP/<dir>/package and echo that folder
  local spec=$1 dir=$2 tgz
  mkdir -p "$TMP/$dir"
  tgz=$(cd "$TMP/$dir" && npm pack --silent "$spec" | tail -n 1)
  tar -xzf "$TMP/$dir/$tgz" -C "$TMP/$dir"
  echo "$TMP/$dir/package"
}

rm -rf "$VENDOR/mathjax" "$VENDOR/requirejs" "$VENDOR/html-manager"
mkdir -p "$VENDOR/mathjax" "$VENDOR/requirejs" "$VENDOR/html-manager"

# --- MathJax 3: the tex-mml-chtml component (Sphinx's default bundle), its CHTML web fonts, and the
# TeX extensions that the bundled `autoload` package fetches on demand (\color, \boldsymbol, ...).
# Not copied: other bundles, the SVG output, speech-rule-engine (sre/) and a11y/ (loaded only when a
# reader turns on speech/exploration in the MathJax menu).
src=$(unpack "mathjax@$MATHJAX_VERSION" mathjax)
cp "$src/LICENSE" "$VENDOR/mathjax/LICENSE"
cp "$src/es5/tex-mml-chtml.js" "$VENDOR/mathjax/"
mkdir -p "$VENDOR/mathjax/output/chtml/fonts" "$VENDOR/mathjax/input/tex"
cp -r "$src/es5/output/chtml/fonts/woff-v2" "$VENDOR/mathjax/output/chtml/fonts/"
cp -r "$src/es5/input/tex/extensions" "$VENDOR/mathjax/input/tex/"

# --- RequireJS (the widget manager is an AMD module). The npm package ships no LICENSE file; the
# header of require.js states "Copyright jQuery Foundation and other contributors. Released under
# MIT license", so the MIT text with that notice is written here.
src=$(unpack "requirejs@$REQUIREJS_VERSION" requirejs)
cp "$src/require.js" "$VENDOR/requirejs/"
cat > "$VENDOR/requirejs/LICENSE" <<'EOF'
RequireJS (https://github.com/requirejs/requirejs), npm package "requirejs".
The header of require.js reads:
  @license RequireJS Copyright jQuery Foundation and other contributors.
  Released under MIT license, https://github.com/requirejs/requirejs/blob/master/LICENSE

MIT License

Copyright jQuery Foundation and other contributors, https://jquery.org/

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
THE SOFTWARE.
EOF

# --- @jupyter-widgets/html-manager: embed-amd.js plus the icon fonts its CSS references
# (woff2/woff/ttf; the .eot/.svg variants are only for legacy browsers and are not requested).
src=$(unpack "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" html-manager)
cp "$src/LICENSE" "$VENDOR/html-manager/LICENSE"
cp "$src/dist/embed.js.LICENSE.txt" "$VENDOR/html-manager/THIRD-PARTY-NOTICES.txt"
cp "$src/dist/embed-amd.js" "$VENDOR/html-manager/"
for font in "$src"/dist/*.woff2 "$src"/dist/*.woff "$src"/dist/*.ttf; do
  name=$(basename "$font")
  grep -q "$name" "$src/dist/embed-amd.js" && cp "$font" "$VENDOR/html-manager/"
done

# --- checksums of everything packed (the authored README and mapping script excluded)
(cd "$VENDOR" && find mathjax requirejs html-manager -type f | LC_ALL=C sort | xargs sha256sum) \
  > "$VENDOR/SHA256SUMS"
echo "vendor_assets: mathjax@$MATHJAX_VERSION requirejs@$REQUIREJS_VERSION" \
  "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION -> $VENDOR/ ($(du -sh "$VENDOR" | cut -f1))"
