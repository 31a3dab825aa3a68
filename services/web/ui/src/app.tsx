/**
 * The console: signed out, every route shows the sign-in form (tokens live in memory only, so a
 * reload signs out); signed in, the navigation and the routes.
 */
import { Redirect, Route, Switch, useLocation } from 'wouter-preact';
import { isAdmin } from './auth/token-store.ts';
import { useTokens } from './auth/use-tokens.ts';
import { NavBar } from './components/nav-bar.tsx';
import { ConversationPage } from './pages/conversation-page.tsx';
import { ConversationsPage } from './pages/conversations-page.tsx';
import { DocsPage } from './pages/docs-page.tsx';
import { OpsPage } from './pages/ops-page.tsx';
import { SignInPage } from './pages/signin-page.tsx';

export function App() {
  const tokens = useTokens();
  const [location, navigate] = useLocation();

  if (!tokens)
    // stay on the route asked for (a link from an alert to /docs/runbooks#…), except /signin itself
    return <SignInPage onSignedIn={() => location === '/signin' && navigate('/', { replace: true })} />;

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <NavBar tokens={tokens} />
      <main id="main" tabIndex={-1}>
        <Switch>
          <Route path="/">
            <ConversationsPage />
          </Route>
          <Route path="/c/:id">{(params) => <ConversationPage key={params.id} id={params.id} />}</Route>
          <Route path="/ops">
            <OpsPage admin={isAdmin(tokens)} />
          </Route>
          <Route path="/docs">
            <Redirect to="/docs/readme" replace />
          </Route>
          <Route path="/docs/:name">{(params) => <DocsPage name={params.name} />}</Route>
          <Route path="/signin">
            <Redirect to="/" replace />
          </Route>
          <Route>
            <h1>Not found</h1>
            <p>This page does not exist.</p>
          </Route>
        </Switch>
      </main>
    </>
  );
}
