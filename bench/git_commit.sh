#!/bin/sh
# Prints the visopt commit that benchmark rows carry: $VISOPT_GIT_COMMIT when set (for a copy of the
# tree without .git, such as the GPU machine's), else `git describe` of this tree with "-dirty" when
# tracked files differ from it, else "unknown". Read-only: it takes no lock on the index.
if [ -n "${VISOPT_GIT_COMMIT:-}" ]; then
  echo "$VISOPT_GIT_COMMIT"
  exit 0
fi
cd "$(dirname "$0")/.." 2>/dev/null || { echo unknown; exit 0; }
export GIT_OPTIONAL_LOCKS=0
commit=$(git describe --always --abbrev=12 2>/dev/null) || { echo unknown; exit 0; }
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit-dirty"
fi
echo "$commit"
