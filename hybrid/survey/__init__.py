"""A draft inspection survey from a video's timed events, knowing nothing of models: distances
along the pipe (:mod:`~hybrid.survey.counter`, :mod:`~hybrid.survey.distance`), the code map to
EN 13508-2 / PACP (:mod:`~hybrid.survey.codes`), the header, observations at metres, and the
survey folder's files (``report.html``: :mod:`~hybrid.survey.page`). ``hybrid survey`` runs it
(:mod:`hybrid.serve.survey_run`); docs/survey.md."""
