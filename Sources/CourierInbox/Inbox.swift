// The inbox daemon lives here (issue #4).
