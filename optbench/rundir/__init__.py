"""Run files: the files a run writes into its output dir. `writer` names and writes them, `recorder` buffers
the rows while a run trains, `reader` finds runs and reads their files back (for the report and the tuner)."""
