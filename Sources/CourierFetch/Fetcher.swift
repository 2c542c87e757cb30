// The HTTP fetcher lives here (issue #3).
