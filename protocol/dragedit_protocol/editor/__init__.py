"""The editor-neutral core shared by the Krita and GIMP plug-ins (pure Python + the client).

- errors: user-facing sentences (UserError, error_text for daemon error codes)
- geometry: Rect, PointPair, pairs from strokes, points-inside checks
- pixels: BGRA<->RGBA, crop/paste, selection -> mask, mask bounds, masked blend
- drag: which region of a layer is sent (DragPlan) and how the result comes back
- params: method schemas from ``welcome`` and the artist's persisted values (ParamStore)
- jobs: a job's state from daemon messages and its status line
- launcher: install.py's record and starting ``dragedit serve``
- prepare: the next drag's prepare (sent once the scene is quiet) and its ready line
- session: the daemon connection + the running job + the prepare, driven by the editor's event loop
"""
