# frozen_string_literal: true

module Walden
  # The attribute names of the WAL-E cookbooks and what they mean to walden.
  module Legacy
    # Where those cookbooks kept their attributes; an earlier namespace wins.
    NAMESPACES = [%w[wal_e], %w[wal-e], %w[postgresql wal_e]].freeze

    # Legacy key => envdir variable. Where cookbooks used two names for one
    # thing, the first listed wins.
    VARIABLES = [
      %w[aws_access_key AWS_ACCESS_KEY_ID], %w[aws_access_key_id AWS_ACCESS_KEY_ID],
      %w[aws_secret_key AWS_SECRET_ACCESS_KEY], %w[aws_secret_access_key AWS_SECRET_ACCESS_KEY],
      %w[s3_prefix WALE_S3_PREFIX], %w[wale_s3_prefix WALE_S3_PREFIX],
      %w[gs_prefix WALE_GS_PREFIX], %w[file_prefix WALE_FILE_PREFIX],
      %w[gpg_key_id WALE_GPG_KEY_ID], %w[pgdata_dir PGDATA]
    ].freeze

    # Legacy key => walden setting that is not an envdir variable.
    SETTINGS = [
      %w[env_dir envdir], %w[envdir envdir], %w[env_path envdir], %w[d_env_path envdir],
      %w[user user], %w[group group], %w[postgres_group group]
    ].freeze

    # The cron fields of base_backup plus Chef's `time`.
    BASE_BACKUP_KEYS = %w[minute hour day month weekday time].freeze
    SCHEDULE = 'WALDEN_BACKUP_SCHEDULE'

    module_function

    # [legacy key, walden equivalent] pairs: the README table lists exactly these.
    def mapping_rows
      vars = VARIABLES.map { |k, v| [k, "node['walden']['env']['#{v}']"] }
      settings = SETTINGS.map { |k, s| [k, "node['walden']['#{s}']"] }
      cron = BASE_BACKUP_KEYS.map { |f| ["base_backup.#{f}", "node['walden']['env']['#{SCHEDULE}']"] }
      other = [%w[base_backup.disabled none], %w[base_backup.options none], ['env', "node['walden']['env']"]]
      vars + settings + cron + other
    end

    # Variables one namespace sets: {name => [value, source]}. The env hash
    # comes first so the named attributes win over it.
    def variables(label, attrs)
      out = extra_env(label, attrs)
      VARIABLES.reverse_each { |key, var| out[var] = [attrs[key], "#{label}['#{key}']"] if Util.present?(attrs[key]) }
      cron = base_backup(attrs)
      out[SCHEDULE] = [Cron.schedule(cron), "#{label}['base_backup']"] if schedule?(cron)
      out
    end

    def extra_env(label, attrs)
      env = Util.hash_or_empty(attrs['env']).select { |_k, v| Util.present?(v) }
      env.to_h { |k, v| [k, [v, "#{label}['env']['#{k}']"]] }
    end

    def base_backup(attrs)
      Util.hash_or_empty(attrs['base_backup'])
    end

    def schedule?(cron)
      BASE_BACKUP_KEYS.any? { |k| Util.present?(cron[k]) }
    end

    # The first namespace giving a setting, or nil.
    def setting(legacy, name)
      legacy.each do |_label, attrs|
        SETTINGS.each { |k, s| return attrs[k].to_s if s == name && Util.present?(attrs[k]) }
      end
      nil
    end
  end
end
