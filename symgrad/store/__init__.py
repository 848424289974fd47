"""Stage-neutral storage: the private cache folder and atomic file writes.

Not a stage: the derive stage (derivation memo, scalar backward steps) and the
codegen stage (kernel modules) both keep files in one cache folder, and the
runtime and the CLI write the user's files. By the one-direction rule
(definition -> graph -> derive -> simplify -> prove -> render / codegen ->
runtime) derive may not import codegen, so what they share lives here, and
this package imports no stage (checked by ``tests/test_stage_imports.py``).

- `symgrad.store.folder`: where the cache folder is, whether it can be trusted
  (private, owned by the user), `CacheWarning`, removal of damaged entries;
- `symgrad.store.atomic`: write a file atomically (temporary file + rename).
"""
