/**
 * A region that scrolls sideways when its content (a wide table) does not fit: focusable and named,
 * so that a keyboard user can scroll it with the arrow keys (WCAG 2.1.1; axe's scrollable-region-focusable).
 */
import type { ComponentChildren } from 'preact';

export function ScrollRegion({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard to be scrolled
    <section class="table-scroll" aria-label={label} tabIndex={0}>
      {children}
    </section>
  );
}
