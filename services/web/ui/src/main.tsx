/** Entry point: loads /config.json (where auth and the gateway are), then renders the console. */
import { render } from 'preact';
import { App } from './app.tsx';
import { loadConfig } from './config.ts';
import './styles.css';

const root = document.getElementById('app')!;

loadConfig().then(
  () => render(<App />, root),
  (err: unknown) =>
    render(
      <main class="signin">
        <p class="error" role="alert">
          The console cannot start: {(err as Error).message}
        </p>
      </main>,
      root,
    ),
);
