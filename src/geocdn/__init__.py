"""Pieces shared by every program of the project: the admin-token check of the HTTP admin
APIs (`geocdn.auth`), the HOST:PORT parser (`geocdn.hostport`), private files
(`geocdn.files`) and stopping background tasks (`geocdn.tasks`)."""
