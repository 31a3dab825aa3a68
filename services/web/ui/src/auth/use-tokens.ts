/** The current tokens as component state: components re-render on sign-in, refresh and sign-out. */
import { useEffect, useState } from 'preact/hooks';
import { currentTokens, onTokensChange, type Tokens } from './token-store.ts';

export function useTokens(): Tokens | undefined {
  const [tokens, setTokens] = useState(currentTokens);
  useEffect(() => onTokensChange(() => setTokens(currentTokens())), []);
  return tokens;
}
