/** Writes a run's files: summary.json, timeline.json and report.html. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderReport } from './html.ts';
import type { Summary, TimelineData } from './summary.ts';

export interface ReportFiles {
  dir: string;
  summary: string;
  timeline: string;
  html: string;
}

export async function writeReports(dir: string, summary: Summary, timeline: TimelineData): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const files: ReportFiles = {
    dir,
    summary: path.join(dir, 'summary.json'),
    timeline: path.join(dir, 'timeline.json'),
    html: path.join(dir, 'report.html'),
  };
  await writeFile(files.summary, `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(files.timeline, `${JSON.stringify(timeline)}\n`);
  await writeFile(files.html, renderReport(summary, timeline));
  return files;
}

export type { Summary, TimelineData } from './summary.ts';
