# frozen_string_literal: true

name 'walden'
description 'Installs walden (WAL-E compatible PostgreSQL archiving), migrates WAL-E hosts to it and rolls them back'
version '0.1.0'
chef_version '>= 16.0'
supports 'debian'
supports 'ubuntu'
