/** What every bench module returns: one row of the table per figure, with its target and whether it was met. */

export interface Options {
  /** `--full`: long runs and K = 500; otherwise the quick mode (under 3 minutes on the reference machine). */
  readonly full: boolean
}

export interface Row {
  /** Row number of issue 7, e.g. `4 (K=100)`. */
  readonly id: string
  readonly name: string
  /** The figure: median and min–max over runs, with ratios where a floor is measured. */
  readonly figure: string
  readonly target: string
  /** null: reported, no target at this setting. */
  readonly met: boolean | null
  readonly detail?: unknown
  /** Markdown printed after the main table (a side-by-side table that does not fit one row). */
  readonly section?: string
}
