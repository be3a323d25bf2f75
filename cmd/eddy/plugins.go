package main

import (
	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/outbox/clean"
	"github.com/eddy-cdc/eddy/outbox/router"
	"github.com/eddy-cdc/eddy/sinks/file"
	"github.com/eddy-cdc/eddy/sinks/s3"
	"github.com/eddy-cdc/eddy/sinks/sql"
	"github.com/eddy-cdc/eddy/sources/datagen"
	"github.com/eddy-cdc/eddy/sources/mysql"
	"github.com/eddy-cdc/eddy/sources/postgres"
)

// builtinPlugins are the implementations behind plugins.yaml's sources,
// sinks and plugin transforms; a test checks that the two agree.
func builtinPlugins() connect.Plugins {
	return connect.Plugins{
		Sources: map[string]func(connect.Params, connect.Env) (connect.Source, error){
			"datagen-source":  datagen.New,
			"postgres-source": postgres.New,
			"mysql-source":    mysql.New,
		},
		Sinks: map[string]func(connect.Params, connect.Env) (connect.Sink, error){
			"file-sink":     file.New,
			"postgres-sink": sql.NewPostgres,
			"mysql-sink":    sql.NewMySQL,
			"s3-sink":       s3.New,
		},
		Transforms: map[string]func(connect.Params, connect.Env) (connect.Transform, error){
			"outbox": router.New,
		},
		Jobs: map[string]func(connect.Params, connect.JobEnv) (connect.Job, error){
			"outbox-clean": clean.New,
		},
	}
}
