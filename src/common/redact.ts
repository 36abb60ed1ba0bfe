/** Removes credentials from text that may quote a connection string or a Redis AUTH command. */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@/\s]*)@/gi, '$1$2:***@')
    .replace(/(\bAUTH\b[^\n]*?)(["']?)[^\s"',\]]+\2(\s*[\]\n]|$)/gi, '$1***$3')
    .replace(/(password|passwd|pwd|secret|token)(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, '$1$2***');
}
