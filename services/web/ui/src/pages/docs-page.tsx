/**
 * `/docs/:name`: the README, the troubleshooting guide or the runbooks, rendered. A URL hash scrolls
 * to the heading with that id; links between the docs stay inside the console.
 */
import { useEffect, useMemo, useRef } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { DOC_NAMES, docMarkdown } from '../api/web-server-api.ts';
import { LoadStatus } from '../components/load-status.tsx';
import { renderMarkdown } from '../docs/render-markdown.ts';
import { useAsync } from '../use-async.ts';

const TITLES: Record<string, string> = { readme: 'README', troubleshooting: 'Troubleshooting', runbooks: 'Runbooks' };

/** Scrolls to the heading the URL's hash names, and moves the keyboard focus there too. */
function showHashTarget(): void {
  const id = decodeURIComponent(window.location.hash.slice(1));
  if (!id) return;
  const target = document.getElementById(id);
  if (!target) return;
  if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
  target.scrollIntoView({ block: 'start' });
  target.focus({ preventScroll: true });
}

export function DocsPage({ name }: { name: string }) {
  const [, navigate] = useLocation();
  const known = (DOC_NAMES as readonly string[]).includes(name);
  const { data, error, loading } = useAsync(() => (known ? docMarkdown(name) : Promise.reject(new Error(`no document “${name}”`))), [name]);
  const html = useMemo(() => (data === undefined ? undefined : renderMarkdown(data, name)), [data, name]);
  const content = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (html !== undefined) showHashTarget();
  }, [html]);

  useEffect(() => {
    window.addEventListener('hashchange', showHashTarget);
    return () => window.removeEventListener('hashchange', showHashTarget);
  }, []);

  // links to /docs/… navigate inside the app: the rendered HTML holds plain <a> elements, so one
  // listener on the container catches their clicks (Enter on a focused link is a click too)
  useEffect(() => {
    const container = content.current;
    if (!container) return;
    const onClick = (event: MouseEvent) => {
      if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const href = (event.target as Element).closest?.('a')?.getAttribute('href');
      if (!href?.startsWith('/docs/')) return;
      event.preventDefault();
      const samePage = href.split('#')[0] === window.location.pathname;
      navigate(href);
      // another document scrolls once it has loaded; this one has nothing to load
      if (samePage) showHashTarget();
    };
    container.addEventListener('click', onClick);
    return () => container.removeEventListener('click', onClick);
  }, [html, navigate]);

  return (
    <section class="docs" aria-labelledby="docs-title">
      <nav class="doc-tabs" aria-label="Documents">
        <h1 id="docs-title" class="visually-hidden">
          Docs: {TITLES[name] ?? name}
        </h1>
        <ul>
          {DOC_NAMES.map((doc) => (
            <li key={doc}>
              <Link href={`/docs/${doc}`} aria-current={doc === name ? 'page' : undefined}>
                {TITLES[doc]}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <LoadStatus loading={loading} error={error} what="the document" />
      {html !== undefined && <div class="markdown" data-testid="docs-content" ref={content} dangerouslySetInnerHTML={{ __html: html }} />}
    </section>
  );
}
