"""The service layer every face calls (CLI local and over SSH, the HTTP API, the dashboard): the same facts and the
same typed errors (paas.errors) whoever asks. Faces check permissions first (paas.access), then call these;
functions that list take the user so they show only what that user may see. No face imports another.
"""
