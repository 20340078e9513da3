# frozen_string_literal: true

module Walden
  # Turns node['walden'] and the attributes of the WAL-E cookbooks into the
  # envdir contents and the few settings that are not variables.
  class Config
    DEFAULT_ENVDIR = '/etc/wal-e.d/env'
    DEFAULT_USER = 'postgres'
    DEFAULT_GROUP = 'postgres'
    COMPRESSIONS = %w[lz4 zstd lzo none].freeze
    # What WAL-E can read back: while a rollback is possible, write this.
    WAL_E_COMPRESSION = 'lzo'
    SCHEDULE = 'WALDEN_BACKUP_SCHEDULE'
    # node['walden'][group][key] => the variable it sets (walden verify and
    # restore drills); node['walden']['env'] still wins.
    CHECK_ATTRIBUTES = {
      %w[verify schedule] => 'WALDEN_VERIFY_SCHEDULE',
      %w[drill schedule] => 'WALDEN_DRILL_SCHEDULE',
      %w[drill dir] => 'WALDEN_DRILL_DIR'
    }.freeze

    attr_reader :envdir, :user, :group, :env, :sources, :warnings, :sensitive_extra

    # walden: node['walden'] as a Hash. legacy: [[label, Hash or nil], ...]
    # in Legacy::NAMESPACES order. lzo_default: WALDEN_COMPRESSION=lzo unless
    # an attribute says otherwise. utc_offset: the host's, in seconds.
    def self.build(walden:, legacy:, lzo_default: false, utc_offset: 0)
      new(Util.stringify(walden || {}), legacy.map { |l, h| [l, Util.stringify(h || {})] }, lzo_default, utc_offset)
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

    # The schedule the attributes ask for, nil when they ask for none.
    def schedule
      env[SCHEDULE]
    end

    private

    def resolve
      @legacy.reverse_each { |label, attrs| apply_legacy(label, attrs) }
      apply_checks
      apply_walden
      @envdir = Validate.envdir(setting('envdir', DEFAULT_ENVDIR))
      @user = setting('user', DEFAULT_USER)
      @group = setting('group', DEFAULT_GROUP)
      @sensitive_extra = Array(@walden['sensitive_variables']).map(&:to_s)
      check_base_backup
      @env = Validate.env(@env)
    end

    def apply_legacy(label, attrs)
      Legacy.variables(label, attrs).each { |name, (value, source)| set(name, value, source) }
      cron = Legacy.base_backup(attrs)
      @warnings << "#{label}['base_backup']['options'] has no walden equivalent and is ignored" if
        Util.present?(cron['options'])
      return if !Legacy.schedule?(cron) || @utc_offset.zero?

      @warnings << "#{label}['base_backup'] is in local time (UTC#{format('%+d', @utc_offset / 3600)}) but " \
                   "#{SCHEDULE} is UTC; set node['walden']['env']['#{SCHEDULE}'] to keep the same hour"
    end

    def apply_checks
      CHECK_ATTRIBUTES.each do |(group, key), name|
        value = Util.hash_or_empty(@walden[group])[key]
        set(name, value.to_s, "node['walden']['#{group}']['#{key}']") if Util.present?(value)
      end
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

      Legacy.setting(@legacy, name) || default
    end

    # WAL-E cookbooks could keep base backups off; walden's agent always
    # schedules them, so ask for an explicit schedule instead of guessing.
    def check_base_backup
      disabled = @legacy.find { |_l, attrs| Legacy.base_backup(attrs)['disabled'] }
      return unless disabled && !Util.present?(Util.hash_or_empty(@walden['env'])[SCHEDULE])

      raise ConfigError, "#{disabled[0]}['base_backup']['disabled'] is set, but walden's agent always takes " \
                         "scheduled base backups; set node['walden']['env']['#{SCHEDULE}'] to decide when"
    end
  end

  # Checks of the values walden would otherwise reject only at run time.
  module Validate
    module_function

    def envdir(path)
      path = path.sub(%r{/+\z}, '') unless path == '/'
      raise ConfigError, "envdir #{path.inspect} must be an absolute path" unless path.start_with?('/')

      path
    end

    # Names and values as strings, or ConfigError naming the variable.
    def env(env)
      out = env.to_h do |name, value|
        raise ConfigError, "#{name.inspect} is not a variable name" unless Envdir.valid_name?(name)

        [name, Envdir.value_string(name, value)]
      end
      compression(out['WALDEN_COMPRESSION'])
      Cron.fields(out[Config::SCHEDULE]) if out[Config::SCHEDULE]
      retain(out['WALDEN_RETAIN'])
      out
    end

    def compression(value)
      return if value.nil? || Config::COMPRESSIONS.include?(value)

      raise ConfigError, "WALDEN_COMPRESSION must be one of #{Config::COMPRESSIONS.join(', ')}, not #{value.inspect}"
    end

    def retain(value)
      return if value.nil? || value.match?(/\A[1-9]\d*d?\z/)

      raise ConfigError, "WALDEN_RETAIN must be a count like 7 or an age like 14d, not #{value.inspect}"
    end
  end

  # Attribute values as Chef hands them over.
  module Util
    module_function

    # Chef's attribute mashes are Hashes (or answer to_hash); specs pass
    # Hashes with symbol or string keys. Either way the library gets plain
    # Hashes with string keys. Only #each is relied on, which mashes keep.
    def stringify(obj)
      case obj
      when Hash then obj.each_with_object({}) { |(k, v), out| out[k.to_s] = stringify(v) }
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
