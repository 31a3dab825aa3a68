/** What a section shows while its data loads, or when loading failed (announced as an alert). */
export function LoadStatus({ loading, error, what }: { loading: boolean; error: string | undefined; what: string }) {
  if (error)
    return (
      <p class="error" role="alert">
        Could not load {what}: {error}
      </p>
    );
  if (loading) return <p class="muted">Loading {what}…</p>;
  return null;
}
