# frozen_string_literal: true

module Walden
  # Turns node['walden'] and the attributes of the WAL-E cookbooks into the
  # envdir contents and the few settings that are not variables.
  class Config
    DEFAULT_ENVDIR = '/etc/wal-e.d/env'
    DEFAULT_USER = 'postgres'
    DEFAULT_GROUP = 'postgres'
    COMPRESSIONS = %w[lz4 zstd lzo none].freeze
    # What WAL-E can read back: while rollback is possible, write this.
    WAL_E_COMPRESSION = 'lzo'
    SCHEDULE = 'WALDEN_BACKUP_SCHEDULE'

    # Where the WAL-E cookbooks kept their attributes; an earlier namespace
    # wins over a later one.
    LEGACY_NAMESPACES = [%w[wal_e], %w[wal-e], %w[postgresql wal_e]].freeze

    # Legacy key => envdir variable. Where cookbooks used two names for one
    # thing, the first listed wins.
    LEGACY_VARIABLES = [
      %w[aws_access_key AWS_ACCESS_KEY_ID], %w[aws_access_key_id AWS_ACCESS_KEY_ID],
      %w[aws_secret_key AWS_SECRET_ACCESS_KEY], %w[aws_secret_access_key AWS_SECRET_ACCESS_KEY],
      %w[s3_prefix WALE_S3_PREFIX], %w[wale_s3_prefix WALE_S3_PREFIX],
      %w[gs_prefix WALE_GS_PREFIX], %w[file_prefix WALE_FILE_PREFIX],
      %w[gpg_key_id WALE_GPG_KEY_ID], %w[pgdata_dir PGDATA]
    ].freeze

    # Legacy key => walden setting that is not an envdir variable.
    LEGACY_SETTINGS = [
      %w[env_dir envdir], %w[envdir envdir], %w[env_path envdir], %w[d_env_path envdir],
      %w[user user], %w[group group], %w[postgres_group group]
    ].freeze

    # Cron's fields plus Chef's `time`; spelt out because libraries load in
    # file-name order and Cron is not loaded yet.
    BASE_BACKUP_KEYS = %w[minute hour day month weekday time].freeze

    attr_reader :envdir, :user, :group, :env, :sources, :warnings, :sensitive_extra, :legacy_schedule_fields

    # walden: node['walden'] as a Hash. legacy: [[label, Hash or nil], ...]
    # in LEGACY_NAMESPACES order. lzo_default: WALDEN_COMPRESSION=lzo unless
    # an attribute says otherwise. utc_offset: the host's, in seconds.
    def self.build(walden:, legacy:, lzo_default: false, utc_offset: 0)
      new(Util.stringify(walden || {}), legacy.map { |l, h| [l, Util.stringify(h || {})] }, lzo_default, utc_offset)
    end

    # [legacy key, walden equivalent] pairs: the README table lists exactly these.
    def self.mapping_rows
      vars = LEGACY_VARIABLES.map { |k, v| [k, "node['walden']['env']['#{v}']"] }
      settings = LEGACY_SETTINGS.map { |k, s| [k, "node['walden']['#{s}']"] }
      cron = BASE_BACKUP_KEYS.map { |f| ["base_backup.#{f}", "node['walden']['env']['#{SCHEDULE}']"] }
      vars + settings + cron + [%w[base_backup.disabled none], %w[base_backup.options none], ['env', "node['walden']['env']"]]
    end

    def initialize(walden, legacy, lzo_default, utc_offset)
      @walden = walden
      @legacy = legacy
      @env = {}
      @sources = {}
      @warnings = []
      @utc_offset = utc_offset
      set('WALDEN_COMPRESSION', WAL_E_COMPRESSION, 'the migration default') if lzo_default
      resolve
    end

    def entries
      Envdir.entries(env, sensitive_extra)
    end

    # Beside the envdir rather than in it, so no envdir reader sees them.
    def manifest_path
      "#{envdir}.walden-managed"
    end

    def cron_save_path
      "#{envdir}.wal-e-cron.json"
    end

    def schedule
      env[SCHEDULE]
    end

    private

    def resolve
      @legacy.reverse_each { |label, attrs| apply_legacy(label, attrs) }
      apply_walden
      @envdir = path_setting('envdir', DEFAULT_ENVDIR)
      @user = setting('user', DEFAULT_USER)
      @group = setting('group', DEFAULT_GROUP)
      @sensitive_extra = Array(@walden['sensitive_variables']).map(&:to_s)
      check_base_backup
      validate!
    end

    def apply_legacy(label, attrs)
      Util.hash_or_empty(attrs['env']).each { |k, v| set(k, v, "#{label}['env']['#{k}']") if Util.present?(v) }
      LEGACY_VARIABLES.reverse_each do |key, var|
        set(var, attrs[key], "#{label}['#{key}']") if Util.present?(attrs[key])
      end
      apply_base_backup(label, Util.hash_or_empty(attrs['base_backup']))
    end

    def apply_base_backup(label, cron)
      given = BASE_BACKUP_KEYS.select { |k| Util.present?(cron[k]) }
      @warnings << "#{label}['base_backup']['options'] has no walden equivalent and is ignored" if Util.present?(cron['options'])
      return if given.empty?

      @legacy_schedule_fields ||= cron.slice(*BASE_BACKUP_KEYS)
      set(SCHEDULE, Cron.schedule(cron), "#{label}['base_backup']")
      return if @utc_offset.zero?

      @warnings << "#{label}['base_backup'] is local time (UTC#{format('%+d', @utc_offset / 3600)}) " \
                   "but #{SCHEDULE} is UTC; set node['walden']['env']['#{SCHEDULE}'] to keep the same hour"
    end

    # walden's names win; false, nil or '' removes a variable outright.
    def apply_walden
      Util.hash_or_empty(@walden['env']).each do |name, value|
        source = "node['walden']['env']['#{name}']"
        if Util.present?(value)
          warn_override(name, value, source)
          set(name, value, source)
        else
          @env.delete(name)
          @sources[name] = "#{source} (removed)"
        end
      end
    end

    def warn_override(name, value, source)
      old = @sources[name]
      return unless old && @env[name].to_s != value.to_s && !old.start_with?('the migration')

      @warnings << "#{name}: #{source} wins over #{old}"
    end

    def set(name, value, source)
      @env[name.to_s] = value
      @sources[name.to_s] = source
    end

    def setting(name, default)
      value = @walden[name]
      return value.to_s if Util.present?(value)

      @legacy.each do |_label, attrs|
        LEGACY_SETTINGS.each { |k, s| return attrs[k].to_s if s == name && Util.present?(attrs[k]) }
      end
      default
    end

    def path_setting(name, default)
      path = setting(name, default)
      path = path.sub(%r{/+\z}, '') unless path == '/'
      raise ConfigError, "#{name} #{path.inspect} must be an absolute path" unless path.start_with?('/')

      path
    end

    # WAL-E cookbooks could keep base backups off; walden's agent always
    # schedules them, so ask for an explicit schedule instead of guessing.
    def check_base_backup
      disabled = @legacy.find { |_l, attrs| Util.hash_or_empty(attrs['base_backup'])['disabled'] }
      return unless disabled && !Util.present?(Util.hash_or_empty(@walden['env'])[SCHEDULE])

      raise ConfigError, "#{disabled[0]}['base_backup']['disabled'] is set, but walden's agent always takes " \
                         "scheduled base backups; set node['walden']['env']['#{SCHEDULE}'] to decide when"
    end

    def validate!
      @env.each_key { |n| raise ConfigError, "#{n.inspect} is not a variable name" unless Envdir.valid_name?(n) }
      @env.each { |n, v| @env[n] = Envdir.value_string(n, v) }
      validate_compression
      Cron.fields(schedule) if schedule
      validate_retain
    end

    def validate_compression
      c = @env['WALDEN_COMPRESSION']
      return if c.nil? || COMPRESSIONS.include?(c)

      raise ConfigError, "WALDEN_COMPRESSION must be one of #{COMPRESSIONS.join(', ')}, not #{c.inspect}"
    end

    def validate_retain
      r = @env['WALDEN_RETAIN']
      return if r.nil? || r.match?(/\A[1-9]\d*d?\z/)

      raise ConfigError, "WALDEN_RETAIN must be a count like 7 or an age like 14d, not #{r.inspect}"
    end
  end

  # Small helpers for attribute values as Chef hands them over.
  module Util
    module_function

    # Chef's attribute mashes answer to_hash; specs pass Hashes with symbol
    # or string keys. Either way the library sees string keys.
    def stringify(obj)
      case obj
      when Hash then obj.to_h { |k, v| [k.to_s, stringify(v)] }
      when Array then obj.map { |v| stringify(v) }
      else obj.respond_to?(:to_hash) ? stringify(obj.to_hash) : obj
      end
    end

    def hash_or_empty(obj)
      obj.is_a?(Hash) ? obj : {}
    end

    # WAL-E cookbooks default unset values to nil or ''; an empty envdir file
    # means "unset" anyway, so neither is written.
    def present?(value)
      !(value.nil? || value == false || (value.respond_to?(:empty?) && value.empty?))
    end
  end
end
