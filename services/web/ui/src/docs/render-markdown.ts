/**
 * The docs' Markdown as safe HTML: marked (GFM), heading ids as GitHub makes them (so that
 * `runbooks#codelabtargetdown` finds its section, as the alerts' runbook_url expects), DOMPurify,
 * and links between the docs turned into this console's routes (`docs/runbooks.md#x` → `/docs/runbooks#x`).
 */
import DOMPurify from 'dompurify';
import { Marked } from 'marked';
import { gfmHeadingId } from 'marked-gfm-heading-id';

const markdown = new Marked({ gfm: true }).use(gfmHeadingId());

/** A link to one of the served docs, from the README (docs/x.md), a doc (x.md) or a doc to the README. */
const DOC_LINK = /^(?:\.{1,2}\/)*(?:docs\/)?(runbooks|troubleshooting)\.md(#.*)?$/i;
const README_LINK = /^(?:\.{1,2}\/)*README\.md(#.*)?$/;

/** The console route of a link inside document `current`, or undefined when it leaves the docs. */
function routeOf(href: string, current: string): string | undefined {
  if (href.startsWith('#')) return `/docs/${current}${href}`;
  const doc = DOC_LINK.exec(href);
  if (doc) return `/docs/${doc[1]!.toLowerCase()}${doc[2] ?? ''}`;
  const readme = README_LINK.exec(href);
  if (readme) return `/docs/readme${readme[1] ?? ''}`;
  return undefined;
}

export function renderMarkdown(text: string, current: string): string {
  const html = markdown.parse(text, { async: false });
  const fragment = DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true });
  for (const link of fragment.querySelectorAll<HTMLAnchorElement>('a[href]')) {
    const href = link.getAttribute('href') ?? '';
    const route = routeOf(href, current);
    if (route) link.setAttribute('href', route);
    else if (/^https?:/i.test(href)) link.setAttribute('rel', 'noopener noreferrer');
  }
  // code blocks keep their lines and scroll sideways: focusable, so that the keyboard scrolls them too
  for (const block of fragment.querySelectorAll('pre')) block.setAttribute('tabindex', '0');
  const holder = document.createElement('div');
  holder.append(fragment);
  return holder.innerHTML;
}
