// Placeholder entry so the build pipeline is exercised from the first commit;
// the stanza core replaces it (issue #2).
export function coreVersion(): i32 {
  return 0;
}
