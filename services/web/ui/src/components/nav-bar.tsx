/** The top navigation: Conversations, Operations (admins only), Docs, and Sign out. */
import { Link, useLocation } from 'wouter-preact';
import { signOut } from '../auth/auth-session.ts';
import { isAdmin, type Tokens } from '../auth/token-store.ts';

export function NavBar({ tokens }: { tokens: Tokens }) {
  const [location, navigate] = useLocation();
  const current = (prefix: string) => (location === prefix || (prefix !== '/' && location.startsWith(prefix)) ? 'page' : undefined);
  const onSignOut = async () => {
    await signOut();
    navigate('/signin');
  };
  return (
    <header class="topbar">
      <nav aria-label="Main">
        <span class="brand">CodeLab</span>
        <ul>
          <li>
            <Link href="/" aria-current={current('/') ?? (location.startsWith('/c/') ? 'page' : undefined)}>
              Conversations
            </Link>
          </li>
          {isAdmin(tokens) && (
            <li>
              <Link href="/ops" data-testid="nav-ops" aria-current={current('/ops')}>
                Operations
              </Link>
            </li>
          )}
          <li>
            <Link href="/docs/readme" aria-current={current('/docs')}>
              Docs
            </Link>
          </li>
        </ul>
        <span class="user">{tokens.username}</span>
        <button type="button" class="secondary" data-testid="nav-signout" onClick={onSignOut}>
          Sign out
        </button>
      </nav>
    </header>
  );
}
